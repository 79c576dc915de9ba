"""Hidden variants of the exercise checks: what grading runs besides the check a student sees.

Every visible ``check_function(student, reference, make_inputs)`` is also run with ``SEEDS`` other seeds: the same
kind of random inputs, but values the student cannot know in advance (the seeds come from the lecturer's grading
secret, see tools/grade.py), so a function that returns the visible check's answers fails. The variants below
change what the visible check holds fixed: shapes, batch sizes, edge cases. Each is run like the visible check
(same student function, same reference, same tolerances) on inputs made by ``inputs``: Python source of an
expression or a ``def`` taking a ``torch.Generator``, evaluated in the notebook's namespace after the check cell
(so it may use the check cell's helpers such as ``tiny_inputs`` or ``Block``). ``call`` picks the check when a
check cell holds two (05's plain and centred Gram matrix).

Students never see this file or its code: not in the sandbox, not in their feedback (which names a failed
variant by its ``what``). The course is open, so this file is public; the seeds are not. A lecturer who wants
private variants too points ``make grade`` at a copy (``HIDDEN=path/to/hidden.py``).

Every variant must pass with the course's solution (tests/test_grading.py checks that).
"""

from __future__ import annotations

from typing import NamedTuple

SEEDS = 2  # extra runs of each visible check on other random inputs


class Variant(NamedTuple):
    what: str  # shown in the feedback when it fails: words, never code
    inputs: str  # source of `lambda g: (...)` or `def variant(g): ...` returning the check's arguments
    call: int = 0  # which check_function call of the check cell (0 = the first)
    trials: int = 2


_RANDOM_BLOCK = '''
def variant(g):
    block = Block({c_in}, {c_out}, {stride}, residual=True).eval()
    with torch.no_grad():
        for name, t in [*block.named_parameters(), *block.named_buffers()]:
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif t.is_floating_point():
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
    return block, torch.randn({n}, {c_in}, {h}, {w}, generator=g)
'''

_STYLE_THREE_LAYERS = '''
def variant(g):
    shapes = {"a": (3, 5, 5), "b": (6, 4, 2), "c": (8, 2, 3)}
    features = {k: torch.rand(1, *s, generator=g) * 6 for k, s in shapes.items()}
    style_maps = {k: torch.rand(1, *s, generator=g) * 6 for k, s in shapes.items()}
    targets = {k: (style.gram_matrix(f, centred=True), f.mean(dim=(2, 3))) for k, f in style_maps.items()}
    return features, targets
'''

VARIANTS: dict[str, list[Variant]] = {
    "topk_probabilities": [
        Variant("one row of 10 classes, k = 10 (all of them)", "lambda g: (torch.randn(1, 10, generator=g) * 30, 10)"),
        Variant("float64 logits, k = 1", "lambda g: (torch.randn(3, 50, generator=g, dtype=torch.float64) * 100, 1)"),
    ],
    "conv_cost": [
        Variant("VGG-sized layers with a non-square output",
                "lambda g: (*(int(v) for v in torch.randint(64, 513, (2,), generator=g)), "
                "int(torch.randint(1, 8, (1,), generator=g)), 56, 28)"),
    ],
    "residual_forward": [
        Variant("an identity shortcut (8 -> 8 channels, stride 1), one 5 x 5 input",
                _RANDOM_BLOCK.format(c_in=8, c_out=8, stride=1, n=1, h=5, w=5)),
        Variant("8 -> 16 channels, stride 2, a batch of 3 non-square inputs",
                _RANDOM_BLOCK.format(c_in=8, c_out=16, stride=2, n=3, h=6, w=10)),
    ],
    "my_occlusion": [
        Variant("windows that do not overlap (window 3, stride 3)", "lambda g: (*tiny_inputs(g), 3, 3)"),
        Variant("one non-square image (10 x 14)",
                "def variant(g):\n    net, _, _ = tiny_inputs(g)\n"
                "    return net, torch.rand(1, 3, 10, 14, generator=g), torch.randint(0, 5, (1,), generator=g), 4, 2"),
    ],
    "my_saliency": [
        Variant("three non-square images (9 x 13)",
                "def variant(g):\n    net, _, _ = tiny_inputs(g)\n"
                "    return net, torch.rand(3, 3, 9, 13, generator=g), torch.randint(0, 5, (3,), generator=g)"),
    ],
    "my_spectrum_to_image": [
        Variant("one square 16 x 16 image with one channel",
                "lambda g: (torch.fft.rfft2(torch.randn(1, 1, 16, 16, generator=g)), (16, 16))"),
        Variant("a batch of 3 tall 5 x 3 images",
                "lambda g: (torch.fft.rfft2(torch.randn(3, 3, 5, 3, generator=g)), (5, 3))"),
    ],
    "my_total_variation": [
        Variant("one 2 x 2 image with one channel", "lambda g: (torch.rand(1, 1, 2, 2, generator=g),)"),
        Variant("a batch of 4 images of 16 x 5 with 4 channels", "lambda g: (torch.rand(4, 4, 16, 5, generator=g),)"),
    ],
    "my_gram_matrix": [
        Variant("one 1 x 7 map with 8 channels", "lambda g: (torch.randn(1, 8, 1, 7, generator=g),)"),
        Variant("centred, a batch of 3 maps of 5 x 2", "lambda g: (torch.rand(3, 5, 5, 2, generator=g) * 6, True)",
                call=1),
        Variant("centred=False passed explicitly", "lambda g: (torch.rand(2, 3, 4, 4, generator=g), False)", call=1),
    ],
    "my_style_loss": [
        Variant("three layers, one image", _STYLE_THREE_LAYERS),
    ],
    "my_fgsm": [
        Variant("one image with eps = 0 (nothing may change)",
                "def variant(g):\n    net, x, y, _ = tiny_inputs(g)\n    return net, x[:1], y[:1], 0.0"),
        Variant("a large eps (0.5): the result stays in [0, 1]",
                "def variant(g):\n    net, x, y, _ = tiny_inputs(g)\n    return net, x, y, 0.5"),
    ],
    "my_project": [
        Variant("L-inf with a small eps, one non-square image",
                "def variant(g):\n    x = torch.rand(1, 3, 4, 6, generator=g)\n"
                "    return x + 0.3 * torch.randn(1, 3, 4, 6, generator=g), x, 0.02, 'linf'"),
        Variant("L2 with an eps larger than the change (nothing to project)",
                "def variant(g):\n    x = torch.rand(2, 3, 5, 5, generator=g)\n"
                "    return x + 0.3 * torch.randn(2, 3, 5, 5, generator=g), x, 10.0, 'l2'", call=1),
    ],
    "new_head": [
        Variant("a deeper body, 10 classes",
                "def variant(g):\n    torch.manual_seed(int(torch.randint(0, 10_000, (1,), generator=g)))\n"
                "    body = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Conv2d(6, 5, 3),\n"
                "                         nn.AdaptiveAvgPool2d(1), nn.Flatten())\n"
                "    return nn.Sequential(body, nn.Linear(5, 3)), '1', 10"),
    ],
    "layer_features": [
        Variant("one image, the last convolution",
                "def variant(g):\n    model, images, _ = make_hook_inputs(g)\n    return model, images[:1], '2'"),
    ],
}

POINTS: dict[str, float] = {}  # exercise -> points (default 1); the nbgrader course and grades.csv use the same
