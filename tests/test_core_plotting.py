import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnn_helpers.core import plotting  # noqa: E402


def teardown_function():
    plt.close("all")


def test_show_images_grid_with_titles_and_maps():
    fig = plotting.show_images([torch.rand(3, 8, 8), torch.rand(8, 8)], ["rgb", "map"], ncols=1)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [ax.get_title() for ax in fig.axes] == ["rgb", "map"]
    assert fig.axes[1].images[0].get_cmap().name == "viridis"


def test_show_images_rejects_mismatched_titles_and_bad_shapes():
    with pytest.raises(ValueError, match="titles"):
        plotting.show_images(torch.rand(2, 3, 4, 4), ["only one"])
    with pytest.raises(ValueError, match="shape"):
        plotting.show_images(torch.rand(4, 4))
    with pytest.raises(TypeError, match="non-empty list"):
        plotting.show_images([])


def test_overlay_heatmap_resizes_and_normalizes():
    fig = plotting.overlay_heatmap(torch.rand(1, 3, 16, 16), torch.rand(4, 4) * 7, title="occlusion")
    heat = fig.axes[0].images[1].get_array()
    assert heat.shape == (16, 16) and heat.min() == pytest.approx(0) and heat.max() == pytest.approx(1)
    with pytest.raises(ValueError, match="alpha"):
        plotting.overlay_heatmap(torch.rand(3, 4, 4), torch.rand(4, 4), alpha=2)
    with pytest.raises(ValueError, match="2-D map"):
        plotting.overlay_heatmap(torch.rand(3, 4, 4), torch.rand(2, 4, 4))


def test_topk_bar_draws_one_bar_per_class_most_likely_on_top():
    fig = plotting.topk_bar([("espresso", 0.9), ("cup", 0.05), ("eggnog", 0.01)])
    ax = fig.axes[0]
    assert [round(bar.get_width(), 2) for bar in ax.patches] == [0.01, 0.05, 0.9]  # drawn bottom to top
    assert [t.get_text() for t in ax.texts] == ["eggnog  1%", "cup  5%", "espresso  90%"]
    with pytest.raises(ValueError, match="at least one"):
        plotting.topk_bar([])


def test_topk_bar_into_given_axes_leaves_the_callers_layout_alone():
    fig, (left, right) = plt.subplots(1, 2)
    right.set_position([0.6, 0.1, 0.3, 0.3])
    plotting.topk_bar([("a", 0.5)], ax=right, title="t")
    assert right.get_title() == "t" and list(right.get_position().bounds) == pytest.approx([0.6, 0.1, 0.3, 0.3])


def test_show_predictions_pairs_each_image_with_its_bars():
    preds = [[("cat", 0.7), ("dog", 0.2)], [("cup", 0.9), ("mug", 0.1)], [("x", 1.0), ("y", 0.0)]]
    fig = plotting.show_predictions(torch.rand(3, 3, 8, 8), preds, ["a", "b", "c"], ncols=2)
    images = [ax for ax in fig.axes if ax.images]
    bars = [ax for ax in fig.axes if ax.patches]
    assert [ax.get_title() for ax in images] == ["a", "b", "c"] and len(bars) == 3 and len(fig.axes) == 8
    assert [t.get_text() for t in bars[1].texts] == ["mug  10%", "cup  90%"]
    with pytest.raises(ValueError, match="one prediction list"):
        plotting.show_predictions(torch.rand(2, 3, 8, 8), preds)


def test_show_heatmap_signed_maps_are_centred_at_zero_and_magnitudes_clipped():
    fig, (a, b) = plt.subplots(1, 2)
    signed = torch.linspace(-1, 3, 100).view(10, 10)
    drawn = plotting.show_heatmap(signed, ax=a, signed=True, percentile=100)
    assert drawn.get_cmap().name == "RdBu_r" and drawn.get_clim() == pytest.approx((-3, 3))  # white = 0
    magnitude = torch.arange(100.0).view(10, 10)  # 99th percentile: 98.01; the maximum 99 is clipped
    drawn = plotting.show_heatmap(magnitude, ax=b, title="saliency")
    assert drawn.get_cmap().name == "gray" and drawn.get_clim() == pytest.approx((0, 98.01))
    assert b.get_title() == "saliency" and len(fig.axes) == 4  # + 2 colorbars
    drawn = plotting.show_heatmap(magnitude, ax=b, image=torch.rand(3, 20, 20), colorbar=False)
    assert drawn.get_array().shape == (20, 20) and len(b.images) == 3 and len(fig.axes) == 4  # resized, over the image
    with pytest.raises(ValueError, match="percentile"):
        plotting.show_heatmap(magnitude, ax=b, percentile=0)
    with pytest.raises(ValueError, match="NaN"):
        plotting.show_heatmap(torch.full((2, 2), float("nan")), ax=b)
    with pytest.raises(ValueError, match="2-D map"):
        plotting.show_heatmap(torch.rand(2, 3, 3), ax=b)
