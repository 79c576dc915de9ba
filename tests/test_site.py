"""`make site` writes an index that links every notebook (checked here without executing them)."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_builder():
    spec = importlib.util.spec_from_file_location("build_site", ROOT / "tools" / "build_site.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_index_links_every_notebook(tmp_path):
    assert load_builder().main(["--no-execute", "--out", str(tmp_path)]) == 0
    index = (tmp_path / "index.html").read_text()
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks and re.findall(r'href="([^"]+)\.html"', index) == notebooks
    for stem in notebooks:
        page = (tmp_path / f"{stem}.html").read_text()
        assert "<html" in page and len(page) > 10_000
    assert "Getting started" in index and "Learning goals" not in index  # the goals text, not the label
