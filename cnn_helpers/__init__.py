"""cnn_helpers: the tested implementations behind the CNN course notebooks.

Modules by topic (each names the notebooks that use it): ``repro``, ``checks``, ``data``, ``models``
(with the model ``registry``), ``plotting``, ``exercises``, and the technique modules added notebook by
notebook. The most used functions are importable from the package itself; they load lazily, so that
``python -m cnn_helpers.models`` does not import its own module twice.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_image": "data", "load_pretrained": "models", "classify": "models", "seed_everything": "repro",
    "get_device": "repro", "fast_mode": "repro", "offline_mode": "repro", "by_mode": "repro",
}
__all__ = list(_EXPORTS)
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'cnn_helpers' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
