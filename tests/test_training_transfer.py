"""Transfer learning: features, strategies (exact requires_grad, the pretrained model untouched), the cached upper part."""

import warnings

import pytest
import torch
import torchvision
from torch import nn

from cnn_helpers.core.hooks import record
from cnn_helpers.core.memory import CostWarning
from cnn_helpers.pretrained.models import ImageClassifier, Normalize, load_pretrained
from cnn_helpers.training.transfer import extract_features, last_linear, next_layer, prepare, upper_part
from cnn_helpers.training.probes import train_classifier
from helpers import assert_unchanged, hooks, mixed_mode, randomize_batch_norm, snapshot


@pytest.fixture(scope="module")
def lite0():
    return load_pretrained("efficientnet_lite0")


def resnet18(generator=None) -> ImageClassifier:
    torch.manual_seed(0)
    model = ImageClassifier(torchvision.models.resnet18(), Normalize((0.5,) * 3, (0.25,) * 3)).eval()
    randomize_batch_norm(model, generator or torch.Generator().manual_seed(0))
    return model


def trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


# ------------------------------------------------------------------------------------------------ features

def test_penultimate_features_are_what_the_head_sees(generator):
    model = resnet18()
    x = torch.rand(5, 3, 32, 32, generator=generator)
    feats = extract_features(model, x, batch_size=2)
    assert feats.shape == (5, 512) and not feats.requires_grad
    torch.testing.assert_close(model.net.fc(feats), model(x))  # the head applied to them gives the logits
    by_name = extract_features(model, x, layer="net.avgpool")
    torch.testing.assert_close(by_name, feats)  # pooled (N, 512, 1, 1) -> (N, 512)


def test_several_layers_in_one_pass_pooled_or_whole(generator):
    model = resnet18()
    x = torch.rand(3, 3, 32, 32, generator=generator)
    out = extract_features(model, x, layer=["net.layer1", "net.layer3"], pool=["net.layer1"])
    assert out["net.layer1"].shape == (3, 64) and out["net.layer3"].shape == (3, 256, 2, 2)
    whole = model.net.layer1(model.net.maxpool(model.net.relu(model.net.bn1(model.net.conv1(model.normalize(x))))))
    torch.testing.assert_close(out["net.layer1"], whole.mean(dim=(2, 3)))
    received = extract_features(model, x, layer="net.layer4", pool=False, inputs=True)
    torch.testing.assert_close(received, out["net.layer3"])


def test_extract_features_leaves_the_model_alone(generator):
    model = mixed_mode(resnet18())
    x = torch.rand(2, 3, 32, 32, generator=generator)
    before = snapshot(model, x)
    extract_features(model, x, layer=["net.layer2", "net.fc"])
    assert_unchanged(before, snapshot(model, x))
    with pytest.raises(ValueError, match="not a submodule"):
        extract_features(model, x, layer="net.layer9")
    assert_unchanged(before, snapshot(model, x))


def test_a_module_called_twice_gives_one_row_per_image(generator):
    # a ResNet block calls its one ReLU twice; the features are its first call (issue 20, #2: 2N rows before)
    model, x = resnet18(), torch.rand(3, 3, 32, 32, generator=generator)
    feats = extract_features(model, x, layer="net.layer1.0.relu", pool=False)
    net, block = model.net, model.net.layer1[0]
    with torch.no_grad():
        first = block.relu(block.bn1(block.conv1(net.maxpool(net.relu(net.bn1(net.conv1(model.normalize(x))))))))
    assert feats.shape == (3, 64, 8, 8)
    torch.testing.assert_close(feats, first)
    assert extract_features(model, x, layer=["net.layer1.0.relu", "net.fc"])["net.layer1.0.relu"].shape == (3, 64)


def test_a_layer_that_never_runs_is_a_clear_error(generator):
    # GoogLeNet's auxiliary heads run in training mode only; features are taken in eval mode (issue 20, #14)
    torch.manual_seed(0)
    model = torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)
    x = torch.rand(2, 3, 64, 64, generator=generator)
    with pytest.raises(ValueError, match="layer 'aux1.fc2' did not run during the forward pass"):
        extract_features(model, x, layer="aux1.fc2")
    with pytest.raises(ValueError, match="layer 'aux2' did not run"):
        extract_features(model, x, layer=["inception3a", "aux2"], pool=False)
    assert extract_features(model, x).shape == (2, 1024)  # the default, the input of the last nn.Linear: fc


def test_features_of_huge_photos_are_estimated_before_the_work(lite0):
    # zeros expanded: an 8000 px photo that takes no memory; EfficientNet-Lite0 would hold about 12 GiB at once
    photo = torch.zeros(1, 3, 1, 1).expand(1, 3, 8000, 8000)
    with pytest.raises(ValueError, match=r"extract_features of 1 images of 8000x8000 px \(batch_size=1\) would "
                                         r"allocate about 1\d GiB; use smaller images"):
        extract_features(lite0.model, photo)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CostWarning)  # the warning stops the call before the work
        with pytest.raises(CostWarning, match="extract_features of 1 images of 3000x3000 px"):
            extract_features(lite0.model, photo[..., :3000, :3000])
    many = torch.zeros(1, 3, 1, 1).expand(12000, 3, 224, 224)  # unpooled maps of 12,000 images: 9 GiB kept
    with pytest.raises(ValueError, match="extract_features of 12000 images of 224x224 px"):
        extract_features(lite0.model, many, layer="net._blocks.0", pool=False)
    assert extract_features(lite0.model, many[:2], layer="net._blocks.0").shape == (2, 16)


# ------------------------------------------------------------------------------------------------ strategies

@pytest.mark.parametrize("strategy", ["linear", "partial", "full", "scratch"])
def test_strategies_set_exactly_the_intended_requires_grad(strategy, lite0, generator):
    before = snapshot(lite0.model)
    net = prepare(lite0.model, 7, strategy=strategy, generator=generator,
                  trainable_from="net._blocks.11" if strategy == "partial" else None)
    assert_unchanged(before, snapshot(lite0.model))  # the pretrained model is untouched
    names = {n for n, _ in net.named_parameters()}
    expected = {
        "linear": {"net._fc.weight", "net._fc.bias"},
        "partial": {n for n in names if n.startswith(("net._blocks.1", "net._conv_head", "net._bn1", "net._fc"))
                    and not n.startswith("net._blocks.1.") and not n.startswith("net._blocks.10.")},
        "full": names, "scratch": names,
    }[strategy]
    assert trainable(net) == expected
    assert net.net._fc.out_features == 7 and net.training
    bn_modes = {m.training for m in net.modules() if isinstance(m, nn.BatchNorm2d)}
    assert bn_modes == ({True} if strategy == "scratch" else {False})  # pretrained statistics are kept
    same = torch.equal(net.net._conv_stem.weight, lite0.model.net._conv_stem.weight)
    assert same == (strategy != "scratch")
    assert net.net._fc.weight.data_ptr() != lite0.model.net._fc.weight.data_ptr()


def test_prepare_works_on_a_torchvision_resnet_and_is_seeded():
    model = resnet18()
    a = prepare(model, 3, strategy="partial", trainable_from="net.layer4", generator=torch.Generator().manual_seed(1))
    b = prepare(model, 3, strategy="partial", trainable_from="net.layer4", generator=torch.Generator().manual_seed(1))
    assert trainable(a) == {n for n, _ in a.named_parameters() if n.startswith(("net.layer4.", "net.fc."))}
    torch.testing.assert_close(a.net.fc.weight, b.net.fc.weight)
    s1 = prepare(model, 3, strategy="scratch", generator=torch.Generator().manual_seed(1))
    s2 = prepare(model, 3, strategy="scratch", generator=torch.Generator().manual_seed(2))
    assert not torch.equal(s1.net.conv1.weight, s2.net.conv1.weight)
    assert not torch.equal(s1.net.conv1.weight, model.net.conv1.weight)


def test_prepare_does_not_copy_the_pretrained_models_hooks(generator):
    # a hook on the pretrained model (here a recording in progress) is not the new model's (issue 20, #15)
    model, calls = resnet18(), []
    handles = [model.net.layer1.register_forward_hook(lambda *args: calls.append(1)),
               model.net.fc.register_full_backward_hook(lambda *args: None)]
    try:
        with record(model, ["net.layer2"]) as rec:
            new = prepare(model, 3, strategy="linear", generator=generator)
            new(torch.rand(1, 3, 32, 32, generator=generator))
            assert calls == [] and len(rec) == 0
        assert hooks(new) == 0 and hooks(model) == 2  # the pretrained model keeps its own
    finally:
        for handle in handles:
            handle.remove()


def test_prepare_bad_arguments(lite0):
    with pytest.raises(ValueError, match="strategy must be one of"):
        prepare(lite0.model, 10, strategy="frozen")
    with pytest.raises(ValueError, match="trainable_from"):
        prepare(lite0.model, 10, strategy="partial")
    with pytest.raises(ValueError, match="trainable_from"):
        prepare(lite0.model, 10, strategy="full", trainable_from="net._blocks.3")
    with pytest.raises(ValueError, match="not a submodule"):
        prepare(lite0.model, 10, strategy="partial", trainable_from="net.blocks.3")
    with pytest.raises(ValueError, match="num_classes"):
        prepare(lite0.model, 1, strategy="linear")
    with pytest.raises(ValueError, match="must be an nn.Linear"):
        prepare(lite0.model, 10, strategy="linear", head="net._conv_head")
    with pytest.raises(TypeError, match="generator"):
        prepare(lite0.model, 10, strategy="linear", generator=0)


# ------------------------------------------------------------------------------------------------ upper part

@pytest.mark.parametrize("layer", ["net._blocks.11", "net._conv_head", "net._fc"])
def test_upper_part_on_cached_inputs_equals_the_model(layer, lite0, generator):
    x = torch.rand(3, 3, 64, 64, generator=generator)
    top = upper_part(lite0.model, layer, example=x[:2])
    cached = extract_features(lite0.model, x, layer=layer, pool=False, inputs=True)
    with torch.no_grad():
        torch.testing.assert_close(top(cached), lite0.model(x), rtol=1e-4, atol=1e-4)
    assert {id(p) for p in top.parameters()} <= {id(p) for p in lite0.model.parameters()}  # shared, not copied


def test_next_layer_and_a_model_that_is_not_a_chain(generator):
    model = resnet18()
    assert next_layer(model, "net.layer3") == "net.layer4" and next_layer(model, "net.layer4.1") == "net.avgpool"
    assert last_linear(model) == "net.fc"
    with pytest.raises(ValueError, match="last layer"):
        next_layer(model, "net.fc")

    class TwoPaths(nn.Module):  # forward is not "children in order"
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.b(self.a(x.flatten(1)) + x.flatten(1))

    with pytest.raises(ValueError, match="do not compute the model's output"):
        upper_part(TwoPaths(), "a", example=torch.rand(2, 4, 1, 1, generator=generator))


# ------------------------------------------------------------------------------------------------ training

def test_train_classifier_trains_only_the_trainable_part(lite0, generator):
    net = prepare(lite0.model, 3, strategy="linear", generator=generator)
    before = {n: p.clone() for n, p in net.named_parameters()}
    stats = {n: b.clone() for n, b in net.named_buffers()}
    x, y = torch.rand(6, 3, 32, 32, generator=generator), torch.tensor([0, 1, 2, 0, 1, 2])
    train_classifier(net, (x, y), epochs=2, batch_size=3, generator=generator)
    changed = {n for n, p in net.named_parameters() if not torch.equal(p, before[n])}
    assert changed == {"net._fc.weight", "net._fc.bias"}
    assert all(torch.equal(b, stats[n]) for n, b in net.named_buffers())  # frozen batch norm kept its statistics


def test_inputs_the_model_cannot_take_are_clear_errors(generator):
    model = resnet18()
    grey = torch.rand(2, 1, 32, 32, generator=generator)
    # the model's Normalize broadcasts one channel to three: grey is taken as RGB, correctly
    torch.testing.assert_close(extract_features(model, grey), extract_features(model, grey.expand(-1, 3, -1, -1)))
    with pytest.raises(ValueError, match=r"the model cannot take images of shape \(2, 4, 32, 32\)"):
        extract_features(model, torch.cat([grey] * 4, 1))  # RGBA
    with pytest.raises(ValueError, match=r"example must have values in \[0, 1\]"):
        upper_part(model, "net.layer4", example=grey.expand(-1, 3, -1, -1) * 255)
    with pytest.raises(ValueError, match=r"num_classes=1000000000000 would allocate"):
        prepare(model, 10**12, strategy="linear")
    with pytest.raises(ValueError, match="trainable_from: layer 'net.layer9'"):
        prepare(model, 3, strategy="partial", trainable_from="net.layer9")
