"""Objectives: hand-computed values on a hand-made recording, arithmetic, clear errors."""

import pytest
import torch

from cnn_helpers.featurevis.objectives import (Objective, Recording, channel, class_logit, feature_match, image_l2,
                                               image_tv, layer_l2, neuron, total_variation)


@pytest.fixture
def recording():
    acts = torch.arange(2 * 3 * 2 * 2, dtype=torch.float32).view(2, 3, 2, 2)  # image, channel, y, x
    logits = torch.tensor([[1.0, 5.0, -2.0], [0.5, 0.0, 3.0]])
    image = torch.full((2, 3, 4, 4), 0.5)
    image[1, :, :, 2:] = 1.0  # second image: left half grey, right half white
    return Recording(image=image, activations={"a": acts, "fc": logits}, logits=logits)


def test_class_logit_one_class_or_one_per_image(recording):
    assert torch.equal(class_logit(1)(recording), torch.tensor([5.0, 0.0]))
    assert torch.equal(class_logit([1, 2])(recording), torch.tensor([5.0, 3.0]))
    assert class_logit(0).needs_logits and class_logit(0).layers == ()


def test_channel_and_neuron(recording):
    # image 0 channel 1 holds 4..7, image 1 channel 1 holds 16..19
    assert torch.equal(channel("a", 1)(recording), torch.tensor([5.5, 17.5]))
    assert torch.equal(channel("a", [0, 2])(recording), torch.tensor([1.5, 21.5]))
    assert torch.equal(neuron("a", 1)(recording), torch.tensor([7.0, 19.0]))  # centre of a 2x2 map: (1, 1)
    assert torch.equal(neuron("a", 1, y=0, x=1)(recording), torch.tensor([5.0, 17.0]))
    assert torch.equal(channel("fc", 2)(recording), torch.tensor([-2.0, 3.0]))  # (N, C) layers work too
    assert channel("a", 0).layers == ("a",) and not channel("a", 0).needs_logits


def test_layer_l2_and_feature_match(recording):
    acts = recording.activations["a"]
    assert torch.allclose(layer_l2("a")(recording), acts.pow(2).mean(dim=(1, 2, 3)))
    assert torch.equal(feature_match("a", acts)(recording), torch.zeros(2))
    target = acts[:1] * 2  # one target for both images: broadcast
    expected = -(acts - target).flatten(1).pow(2).sum(1) / target.pow(2).sum()
    assert torch.allclose(feature_match("a", target)(recording), expected)


def test_image_penalties_hand_computed(recording):
    assert torch.allclose(image_l2()(recording), torch.tensor([0.0, 0.125]))  # half the pixels 0.5 away
    # second image: one jump of 0.5 per row, between columns 1 and 2: 4 of the 12 horizontal differences
    assert torch.allclose(total_variation(recording.image), torch.tensor([0.0, 0.25 * 4 / 12]))
    assert torch.allclose(total_variation(recording.image, beta=1.0), torch.tensor([0.0, 0.5 * 4 / 12]))
    assert torch.allclose(image_tv()(recording), total_variation(recording.image))


def test_total_variation_of_a_checkerboard():
    board = (torch.arange(4)[:, None] + torch.arange(4)[None, :]) % 2
    assert torch.allclose(total_variation(board.float().expand(1, 3, 4, 4)), torch.tensor([2.0]))


def test_arithmetic(recording):
    a, b, c = channel("a", 1), class_logit(0), layer_l2("a")
    combined = a + 2 * b - c * 0.5
    expected = a(recording) + 2 * b(recording) - 0.5 * c(recording)
    assert torch.allclose(combined(recording), expected)
    assert combined.layers == ("a",) and combined.needs_logits
    assert torch.allclose(sum([a, b])(recording), a(recording) + b(recording))
    assert torch.allclose((-a)(recording), -a(recording))
    assert "logit[0]" in repr(combined)
    with pytest.raises(TypeError):
        a + 1.0
    with pytest.raises(TypeError):
        a * "2"


def test_errors_name_the_problem(recording):
    with pytest.raises(ValueError, match="channel 3 is out of range: layer 'a' has 3 channels"):
        channel("a", 3)(recording)
    with pytest.raises(ValueError, match="outside"):
        neuron("a", 0, y=5)(recording)
    with pytest.raises(ValueError, match="target must be a class index in \\[0, 2\\]"):
        class_logit(7)(recording)
    with pytest.raises(ValueError, match="one class per image"):
        class_logit([0, 1, 2])(recording)
    with pytest.raises(ValueError, match="same image size"):
        feature_match("a", torch.zeros(1, 3, 4, 4))(recording)
    with pytest.raises(ValueError, match="beta"):
        total_variation(recording.image, beta=0.5)
    with pytest.raises(ValueError, match="H, W >= 2"):
        total_variation(torch.zeros(1, 3, 1, 5))


def test_custom_objective():
    mean_red = Objective(lambda r: r.image[:, 0].mean(dim=(1, 2)), name="red")
    assert torch.equal(mean_red(Recording(image=torch.ones(2, 3, 2, 2))), torch.ones(2))
