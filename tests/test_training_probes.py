"""Training on top of a pretrained network: train_classifier (on the shared loop), linear probes, the data helpers."""

import pytest
import torch
from torch import nn

from cnn_helpers.core.data import load_mnist
from cnn_helpers.pretrained.models import load_pretrained
from cnn_helpers.training.transfer import extract_features
from cnn_helpers.training.loop import History, top1_accuracy
from cnn_helpers.training.probes import linear_probe, stratified_split, to_rgb, train_classifier


@pytest.fixture(scope="module")
def lite0():
    return load_pretrained("efficientnet_lite0")


def separable(generator, n=40):
    feats = torch.randn(n, 6, generator=generator)
    labels = (feats[:, 0] + feats[:, 1] > 0).long()
    return feats, labels


def test_train_classifier_evaluates_every_few_epochs_or_only_at_the_end(generator):
    feats, labels = separable(generator, n=32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    assert train_classifier(model, (feats, labels), epochs=6, batch_size=8, every=2).epochs == [2, 4, 6]
    only_end = train_classifier(model, (feats, labels), (feats, labels), epochs=3, batch_size=8, every=None)
    assert only_end.epochs == [3] and len(only_end.val_accuracy) == 1
    with pytest.raises(ValueError, match="labels must be"):
        train_classifier(model, (feats, labels.float()), epochs=1)


def test_train_classifier_and_linear_probe_call_back_after_every_step(generator):
    feats, labels = separable(generator, n=32)
    model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
    seen = []
    train_classifier(model, (feats, labels), epochs=3, batch_size=8, every=None,
                     callback=lambda step, net, loss: seen.append((step, net is model, loss)))
    assert [s for s, _, _ in seen] == list(range(1, 13)) and all(same for _, same, _ in seen)
    steps = []
    probe, history = linear_probe((feats, labels), epochs=4, generator=generator,
                                  callback=lambda step, net, loss: steps.append((step, top1_accuracy(net, feats, labels))))
    assert [s for s, _ in steps] == [1, 2, 3, 4] and steps[-1][1] == top1_accuracy(probe, feats, labels)


def test_train_classifier_learns_and_a_seeded_run_reproduces(generator):
    feats, labels = separable(generator)
    results = []
    for _ in range(2):
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(6, 2))
        history = train_classifier(model, (feats, labels), (feats[:10], labels[:10]), epochs=20, lr=0.1, batch_size=8,
                                  generator=torch.Generator().manual_seed(3))
        results.append((history, top1_accuracy(model, feats, labels)))
    (history, acc), (again, acc2) = results
    assert isinstance(history, History) and history.epochs == list(range(1, 21))
    assert len(history.train_loss) == len(history.val_accuracy) == 20
    assert acc == acc2 and history.train_loss == again.train_loss  # same seed, same run
    assert acc >= 0.95 and history.train_loss[-1] < history.train_loss[0]


def test_linear_probe_features_beat_pixels_with_10_labels_per_class(lite0):
    """ImageNet features from a late stage of EfficientNet-Lite0 separate MNIST digits better than raw pixels."""
    digits, labels = load_mnist(standardize=False)
    test, train = stratified_split(labels, [30, 10], generator=torch.Generator().manual_seed(0))
    layer = lite0.info.stages[-3]
    feats = extract_features(lite0.model, to_rgb(digits[torch.cat([train, test])], size=64), layer=layer)
    f_train, f_test = feats[:len(train)], feats[len(train):]
    probe, _ = linear_probe((f_train, labels[train]), generator=torch.Generator().manual_seed(0))
    pixels, _ = linear_probe((digits[train].flatten(1), labels[train]), generator=torch.Generator().manual_seed(0))
    on_features = top1_accuracy(probe, f_test, labels[test])
    on_pixels = top1_accuracy(pixels, digits[test].flatten(1), labels[test])
    assert on_features > on_pixels + 0.05, (on_features, on_pixels)


# ------------------------------------------------------------------------------------------------ data

def test_stratified_split_is_disjoint_balanced_and_seeded():
    labels = torch.arange(3).repeat_interleave(10)
    a, b = stratified_split(labels, [2, 5], generator=torch.Generator().manual_seed(0))
    again = stratified_split(labels, [2, 5], generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, again[0]) and torch.equal(b, again[1])
    assert not set(a.tolist()) & set(b.tolist())
    assert torch.bincount(labels[a]).tolist() == [2, 2, 2] and torch.bincount(labels[b]).tolist() == [5, 5, 5]
    with pytest.raises(ValueError, match="has 10"):
        stratified_split(labels, [6, 5])
    with pytest.raises(ValueError, match="int64"):
        stratified_split(labels.float(), [1])


def test_to_rgb():
    grey = torch.rand(2, 1, 28, 28)
    out = to_rgb(grey, size=32)
    assert out.shape == (2, 3, 32, 32) and torch.equal(out[:, 0], out[:, 2]) and 0 <= out.min() and out.max() <= 1
    with pytest.raises(ValueError, match="images must have 4 dimensions"):
        to_rgb(torch.rand(2, 28, 28), size=32)
    with pytest.raises(ValueError, match=r"images must be \(N, 1 or 3, H, W\)"):
        to_rgb(torch.rand(2, 2, 28, 28), size=32)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        to_rgb(grey * 255, size=32)


def test_to_rgb_converts_raw_uint8_digits():
    grey = torch.rand(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    raw = (grey * 255).round().to(torch.uint8)  # MNIST as stored
    torch.testing.assert_close(to_rgb(raw, size=32), to_rgb(grey, size=32), atol=1 / 255, rtol=0)
    with pytest.raises(ValueError, match=r"size=100000\) would allocate"):
        to_rgb(grey, size=100_000)


def test_linear_probe_trains_inside_inference_mode():
    feats, labels = torch.randn(6, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([0, 1, 2, 0, 1, 2])
    expected, _ = linear_probe((feats, labels), epochs=5, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        probe, _ = linear_probe((feats, labels), epochs=5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(probe[1].weight, expected[1].weight)


def test_epochs_that_would_run_for_days_are_refused_naming_epochs():
    with pytest.raises(ValueError, match=r"epochs=1000000000000 would take"):
        linear_probe((torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2])), epochs=10**12)


def test_stratified_split_refuses_negative_labels():
    with pytest.raises(ValueError, match="labels must be class indices >= 0"):
        stratified_split(torch.tensor([0, -1, 0, -1]), [1])


def test_stratified_split_refuses_empty_or_2d_labels():
    # empty labels gave torch.cat's "expected a non-empty list of Tensors" (issue 20, #17)
    with pytest.raises(ValueError, match=r"labels must be a non-empty \(N,\) int64 tensor, got \(0,\) torch.int64"):
        stratified_split(torch.zeros(0, dtype=torch.long), [1])
    with pytest.raises(ValueError, match=r"labels must be .* got \(4, 1\) torch.int64"):
        stratified_split(torch.tensor([[0], [1], [0], [1]]), [1])
