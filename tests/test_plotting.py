import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnn_helpers import plotting  # noqa: E402


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
    assert len(ax.patches) == 3
    assert [t.get_text() for t in ax.get_yticklabels()] == ["eggnog", "cup", "espresso"]
    with pytest.raises(ValueError, match="at least one"):
        plotting.topk_bar([])
