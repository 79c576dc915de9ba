"""`make site`: an index with rendered learning goals, a titled page per notebook, every asset local; the
student site holds no solution. Checked here without executing the notebooks (the browser test,
`make test-ui`, opens an executed site)."""

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import build_site  # noqa: E402

NOTEBOOKS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.fixture(scope="module")
def builder():
    return build_site


@pytest.fixture(scope="module", params=["solutions", "student"])
def site(request, builder, tmp_path_factory):
    out = tmp_path_factory.mktemp(request.param)
    args = ["--no-execute", "--out", str(out)] + (["--student"] if request.param == "student" else [])
    assert builder.main(args) == 0
    return request.param, out


def test_index_links_every_notebook_with_its_goals_rendered(site):
    _, out = site
    index = (out / "index.html").read_text()
    assert NOTEBOOKS and re.findall(r'href="([^"/.]+)\.html"', index) == NOTEBOOKS
    assert "<pre" not in index and "**" not in index, "goals rendered from Markdown, not shown raw"
    assert index.count('<div class="goals"><p><strong>Learning goals.</strong>') == len(NOTEBOOKS)
    assert index.count("<ol>") == len(NOTEBOOKS)  # each notebook's numbered goals
    assert "Getting started" in index and "„" not in index and "Verbindung" not in index, "no lecture quotes"


def test_the_index_links_every_slide_deck(site):
    """Each notebook's entry links its deck in build/slides/ (tests/test_slides.py checks the decks themselves)."""
    _, out = site
    index = (out / "index.html").read_text()
    assert re.findall(r'href="\.\./slides/([^"]+)\.slides\.html"', index) == NOTEBOOKS


def test_every_page_has_its_title_navigation_and_only_local_assets(site):
    kind, out = site
    for i, stem in enumerate(NOTEBOOKS):
        page = (out / f"{stem}.html").read_text()
        title = re.search(r"<title>(.*?)</title>", page).group(1)
        assert title.startswith(stem[:2] + " · ") and title.endswith("Convolutional networks, from the inside")
        assert 'href="index.html"' in page and (i == 0 or f'href="{NOTEBOOKS[i - 1]}.html"' in page)
        assert ("student version" if kind == "student" else "with solutions") in page
        sources = (re.findall(r'<(?:script|img|link|iframe|source)\b[^>]*?\b(?:src|href)="([^"]+)"', page)
                   + re.findall(r"widgetRendererSrc = '([^']+)'", page) + re.findall(r"import\(\"([^\"]+)\"\)", page))
        assert sources and not [s for s in sources if re.match(r"(https?:)?//", s)], "every asset local"
        for source in sources:
            if source.startswith("assets/"):
                assert (out / source.split("?")[0]).is_file(), source
        assert "assets/MathJax/MathJax.js" in page and "require.min.js" not in page and "mermaid" not in page


def test_student_site_has_no_solution(site):
    kind, out = site
    pages = "".join((out / f"{stem}.html").read_text() for stem in NOTEBOOKS)
    assert ("BEGIN SOLUTION" in pages) == (kind == "solutions")
    if kind == "student":
        assert "NotImplementedError" in pages


def test_goals_stop_before_the_lecture_quotes(builder):
    import nbformat

    cell = nbformat.v4.new_markdown_cell("# 09 · Topic\n\n**Learning goals.** After this notebook you can\n"
                                         "1. do $x^2$,\n2. do more.\n\n> „Ein Zitat“\n")
    title, goals = builder.title_and_goals(nbformat.v4.new_notebook(cells=[cell]), "fallback")
    assert title == "09 · Topic" and goals == "After this notebook you can\n1. do $x^2$,\n2. do more."


def test_widget_renderer_is_fetched_only_with_the_pinned_hash(tmp_path):
    import base64
    import hashlib
    import io
    import tarfile

    import site_assets

    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, text in (("package/dist/embed.js", b"render()"), ("package/dist/a.woff2", b"font"),
                           ("package/src/index.ts", b"source"), ("package/package.json", b"{}")):
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text))
    tarball = tmp_path / "html-manager.tgz"
    tarball.write_bytes(data.getvalue())
    good = "sha512-" + base64.b64encode(hashlib.sha512(data.getvalue()).digest()).decode()
    with pytest.raises(RuntimeError, match="does not match"):
        site_assets.fetch(tarball.as_uri(), good[:-8] + "AAAAAAA=", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()
    target = site_assets.fetch(tarball.as_uri(), good, tmp_path / "renderer")
    assert sorted(p.name for p in target.iterdir()) == ["a.woff2", "embed.js", "package.json"]
    assert site_assets.fetch("file:///nowhere.tgz", good, target) == target  # present: nothing fetched


def test_without_the_widget_renderer_the_site_says_how_to_get_it(builder, tmp_path, monkeypatch, capsys):
    import site_assets

    monkeypatch.setattr(site_assets, "WIDGETS_DIR", tmp_path / "not-fetched")
    assert builder.main(["--no-execute", "--out", str(tmp_path / "site")]) == 2
    assert "tools/site_assets.py fetch" in capsys.readouterr().err
