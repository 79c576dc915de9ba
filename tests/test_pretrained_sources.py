"""load_from: the real loading code of each library, run offline on models saved to a local folder or file;
offline, one clear error that names the source, the model and how to fetch it."""

import os

import pytest
import torch
import torchvision

from cnn_helpers.pretrained.__main__ import main
from cnn_helpers.pretrained.sources import EXAMPLES, SOURCES, Loaded, SourceUnavailableError, load_from


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """CNN_OFFLINE=1 and empty caches (torch hub, Hugging Face), whatever this machine holds."""
    import huggingface_hub.constants as hf

    monkeypatch.setenv("CNN_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # never torch.hub.set_dir: it cannot be undone
    monkeypatch.setattr(hf, "HF_HUB_CACHE", str(tmp_path / "hf"))
    return tmp_path


def normalized(x, mean, std):
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.mark.parametrize("source", SOURCES)
def test_offline_error_names_source_model_and_fetch_command(source, offline):
    name = EXAMPLES[source]
    with pytest.raises(SourceUnavailableError) as info:
        load_from(source, name)
    message = str(info.value)
    assert message.startswith(f"{source}:") and name in message and "CNN_OFFLINE=1" in message
    assert f"python -m cnn_helpers.pretrained fetch {source} {name}" in message
    assert isinstance(info.value, RuntimeError)  # a WeightsUnavailableError, like load_pretrained's


def test_torchvision_from_the_hub_cache_and_from_a_file(offline, generator):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    url = torchvision.models.ResNet18_Weights.DEFAULT.url
    path = offline / "hub" / "checkpoints" / os.path.basename(url)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)
    x = torch.rand(2, 3, 64, 64, generator=generator)
    expected = reference(normalized(x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)))
    for loaded in (load_from("torchvision", "resnet18"), load_from("torchvision", "resnet18", pretrained=path)):
        assert isinstance(loaded, Loaded) and loaded.input_size == 224 and len(loaded.categories) == 1000
        assert not loaded.model.training
        torch.testing.assert_close(loaded.model(x), expected)
    assert "torch hub cache" in load_from("torchvision", "resnet18").origin


def test_timm_from_a_local_folder(tmp_path, generator):
    import timm

    torch.manual_seed(0)
    net = timm.create_model("test_resnet", num_classes=5).eval()
    timm.models.save_for_hf(net, tmp_path / "tiny", model_config={"label_names": list("abcde")})
    loaded = load_from("timm", str(tmp_path / "tiny"))
    x = torch.rand(2, 3, 48, 48, generator=generator)
    cfg = net.pretrained_cfg
    torch.testing.assert_close(loaded.model(x), net(normalized(x, cfg["mean"], cfg["std"])))
    assert loaded.categories == list("abcde") and loaded.input_size == cfg["input_size"][-1]
    assert loaded.model.net is not net  # built by timm from the folder, not the object we saved


def test_huggingface_from_a_local_folder(tmp_path, generator):
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic", num_labels=3,
                          id2label={0: "cat", 1: "dog", 2: "fox"}, label2id={"cat": 0, "dog": 1, "fox": 2})
    torch.manual_seed(0)
    net = ResNetForImageClassification(config).eval()
    net.save_pretrained(tmp_path)
    ConvNextImageProcessor(size={"shortest_edge": 40}, image_mean=[0.4, 0.5, 0.6], image_std=[0.2, 0.25, 0.3]).save_pretrained(tmp_path)
    loaded = load_from("huggingface", str(tmp_path))
    x = torch.rand(2, 3, 40, 40, generator=generator)
    torch.testing.assert_close(loaded.model(x), net(pixel_values=normalized(x, (0.4, 0.5, 0.6), (0.2, 0.25, 0.3))).logits)
    assert loaded.categories == ["cat", "dog", "fox"] and loaded.input_size == 40


def test_openmmlab_checkpoint_matches_torchvision_resnet(tmp_path, generator):
    """mmpretrain's ResNet-18 with a checkpoint in OpenMMLab's published format computes what torchvision's
    ResNet-18 computes with the same weights (keys differ only by the 'backbone.'/'head.' prefixes)."""
    torch.manual_seed(0)
    reference = torchvision.models.resnet18().eval()
    for m in reference.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1), m.running_var.uniform_(0.5, 1.5)
    state = {("head." if k.startswith("fc.") else "backbone.") + k: v for k, v in reference.state_dict().items()}
    classes = [f"class {i}" for i in range(1000)]
    torch.save({"meta": {"dataset_meta": {"classes": classes}}, "state_dict": state}, tmp_path / "ckpt.pth")
    loaded = load_from("openmmlab", "resnet18_8xb32_in1k", pretrained=tmp_path / "ckpt.pth")
    x = torch.rand(2, 3, 64, 64, generator=generator)
    mean, std = (123.675 / 255, 116.28 / 255, 103.53 / 255), (58.395 / 255, 57.12 / 255, 57.375 / 255)
    torch.testing.assert_close(loaded.model(x), reference(normalized(x, mean, std)), rtol=1e-4, atol=1e-4)
    assert loaded.categories == classes and loaded.input_size == 224


def test_random_weights_need_no_download(offline):
    loaded = load_from("torchvision", "resnet18", pretrained=False)
    assert loaded.origin == "random initialization" and loaded.categories is None
    assert loaded.model(torch.rand(1, 3, 32, 32)).shape == (1, 1000)


def test_corrupt_file_is_a_clear_error(tmp_path):
    (tmp_path / "broken.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(SourceUnavailableError, match="could not be read"):
        load_from("torchvision", "resnet18", pretrained=tmp_path / "broken.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "wrong.pth")
    with pytest.raises(SourceUnavailableError, match="do not fit"):
        load_from("torchvision", "resnet18", pretrained=tmp_path / "wrong.pth")


def test_bad_arguments():
    with pytest.raises(ValueError, match="source must be one of"):
        load_from("modelzoo", "resnet18")
    with pytest.raises(ValueError, match="torchvision classification model"):
        load_from("torchvision", "resnet19")
    with pytest.raises(TypeError, match="name must be"):
        load_from("timm", 18)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_from("torchvision", "resnet18", pretrained="/nonexistent/weights.pth")
    with pytest.raises(TypeError, match="pretrained must be"):
        load_from("torchvision", "resnet18", pretrained=1)


def test_fetch_command(offline, capsys):
    assert main([]) == 2 and "usage" in capsys.readouterr().out
    assert main(["fetch", "torchvision", "resnet18"]) == 1
    assert "CNN_OFFLINE=1" in capsys.readouterr().out
