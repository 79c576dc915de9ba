"""Infrastructure every topic builds on; nothing here imports a topic.

* :mod:`.repro`: seeds, device, fast/full mode and every switch (``SWITCHES``) — each notebook's setup cell;
* :mod:`.data`: photos and small datasets that load offline; :mod:`.plotting`: image grids, heatmaps, bars;
* :mod:`.checks` (argument checks with clear errors) and :mod:`.state` (leave a model as it was found);
* :mod:`.memory`, :mod:`.budget`, :mod:`.macs`: what a call will cost, said before it runs (one MAC counter);
* :mod:`.hooks`: the one layer recorder; :mod:`.ops`: resizing, Gaussian blur, relative error;
  :mod:`.fold`: a frozen copy with batch norm folded into the convolutions (cheaper, the same outputs);
  :mod:`.progress`: progress bars;
* :mod:`.exercises`: the checks of the notebooks' exercises (``check_function``, ``use``).

The most used functions are importable from ``cnn_helpers`` itself (``load_image``, ``seed_everything`` ...).
Nothing is imported here eagerly: ``import cnn_helpers.core.checks`` stays light (no matplotlib).
"""
