"""cnn_helpers: the tested implementations behind the CNN course notebooks.

Modules by topic (each names the notebooks that use it): ``repro``, ``data``, ``models``,
``plotting``, ``exercises``, and the technique modules added notebook by notebook.
"""

from .data import load_image
from .models import classify, load_pretrained
from .repro import by_mode, fast_mode, get_device, offline_mode, seed_everything

__all__ = ["load_image", "load_pretrained", "classify", "seed_everything", "get_device", "fast_mode",
           "offline_mode", "by_mode"]
__version__ = "0.1.0"
