"""Lecture mode without a browser: every notebook carries the slide structure the rules in tools/slides.py give
it (RISE and `make slides` read it), the rules do what they say on small notebooks, and the slides built from
the stored notebooks have every asset local and speaker notes on every slide. (`make test-ui` opens executed
slides at 1280 x 720 and runs RISE.)"""

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import slides  # noqa: E402

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_has_the_slide_structure_its_rules_give(path):
    nb = nbformat.read(path, as_version=4)
    wrong = slides.problems(nb)
    assert not wrong, (f"{path.name}: slide metadata missing or not what the rules give ({len(wrong)} cells; after "
                       f"editing or merging a notebook run `python tools/slides.py apply {path.relative_to(ROOT)}` "
                       "or `make slides-metadata`):\n  " + "\n  ".join(wrong[:8]))
    kinds = [c.metadata["slideshow"]["slide_type"] for c in nb.cells]
    assert kinds[0] == "slide" and kinds.count("slide") >= 2, "a title slide and a slide per section"
    setup = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    assert kinds[setup] == "skip"
    live = [c for c, k in zip(nb.cells, kinds) if c.cell_type == "code" and k not in ("skip", "notes")]
    assert len(live) >= 3, "live cells on the slides"


def demo():
    return new_notebook(cells=[
        new_markdown_cell("# 09 · Demo\n\n**Learning goals.** After this you can\n1. do it.\n\n"
                          "**The lecture notes** say:\n\n> „Ein Satz“\n\n*(A sentence.)*\n\nBelow, measured."),
        new_code_cell("from cnn_helpers.repro import seed_everything\nseed_everything(0)"),
        new_markdown_cell("## A claim\n\nShort."),
        new_code_cell("x = 1\nprint(x)"),
        new_markdown_cell("Reading the output."),
        new_code_cell("def helper(a):\n    return a\n\nimport math"),
        new_code_cell("check_function(helper, helper, make)"),
        new_markdown_cell("### A sub-point\n\n" + "Long prose. " * 200),
        new_code_cell("\n".join(f"y{i} = {i}" for i in range(30))),
        new_markdown_cell("Said by the lecturer only.", metadata={"tags": ["slideshow-notes"]}),
    ])


def test_rules_follow_the_structure_and_tags_override():
    assert slides.slide_types(demo()) == [
        "slide", "skip", "slide", "-", "subslide", "skip", "skip", "subslide", "subslide", "notes"]
    nb = demo()
    nb.cells[3].metadata["tags"] = ["slideshow-subslide"]
    assert slides.slide_types(nb)[3] == "subslide"
    nb.cells[3].metadata["tags"] = ["slideshow-skip", "slideshow-slide"]
    with pytest.raises(ValueError, match="more than one"):
        slides.slide_types(nb)


def test_check_names_missing_and_drifted_metadata_and_apply_fixes_it():
    nb = demo()
    assert len(slides.problems(nb)) == len(nb.cells) + 1  # every cell, and the notebook's RISE settings
    assert slides.apply(nb) == len(nb.cells) + 1 and slides.problems(nb) == [] and slides.apply(nb) == 0
    nb.cells[2].metadata["slideshow"]["slide_type"] = "fragment"  # edited by hand
    nb.cells.insert(3, new_code_cell("print('new cell')"))  # the notebook changed after the tool ran
    found = slides.problems(nb)
    # the new cell needs metadata, and the cell after it now follows code: a sub-slide of its own
    assert [re.match(r"cell (\d+)", f).group(1) for f in found] == ["2", "3", "4"]
    assert "'fragment'" in found[0] and "no slideshow metadata" in found[1]
    assert "RISE settings missing" in slides.problems(new_notebook(cells=[]))[0]


def test_a_long_markdown_cell_keeps_its_claim_on_the_slide_and_the_rest_in_the_notes():
    parts = slides.markdown_parts(demo().cells[0].source, "slide", first=True)
    assert [p.kind for p in parts] == ["slide", "subslide"]
    assert parts[0].text.startswith("# 09 · Demo") and "Learning goals" in parts[0].text
    assert parts[1].text.startswith("**The lecture notes** say:") and "> „Ein Satz“" in parts[1].text
    assert "*(A sentence.)*" in parts[1].text and parts[1].text.endswith("Below, measured.")
    long = slides.markdown_parts(demo().cells[7].source, "subslide")
    assert long[0].text.endswith("…") and sum(slides.block_px(b) for b in long[0].text.split("\n\n")) <= 400
    assert long[-1].kind == "notes" and long[-1].text.count("Long prose.") == 200
    split = slides.markdown_parts("Intro.\n\n## Next section\n\nText.\n\n### Detail\n\nMore.", "-")
    assert [(p.kind, p.text.splitlines()[0]) for p in split] == [
        ("-", "Intro."), ("slide", "## Next section"), ("subslide", "### Detail")]


@pytest.fixture(scope="module")
def stored_slides(tmp_path_factory):
    import build_slides

    out = tmp_path_factory.mktemp("slides")
    assert build_slides.main(["--no-execute", "--out", str(out)]) == 0
    return out


def test_slides_of_every_notebook_have_local_assets_and_notes_on_every_slide(stored_slides):
    index = (stored_slides / "index.html").read_text()
    assert re.findall(r'href="([^"]+)\.slides\.html"', index) == [p.stem for p in NOTEBOOKS]
    for path in NOTEBOOKS:
        page = (stored_slides / f"{path.stem}.slides.html").read_text()
        sources = re.findall(r'<(?:script|img|link|iframe|source)\b[^>]*?\b(?:src|href)="([^"]+)"', page) + \
            re.findall(r"widgetRendererSrc = '([^']+)'", page)
        assert sources and not [s for s in sources if re.match(r"(https?:)?//", s)], "every asset local"
        for source in sources:
            if source.startswith("assets/"):
                assert (stored_slides / source.split("?")[0]).is_file(), source
        assert "assets/reveal.js/dist/reveal.js" in page and "require.min.js" not in page
        leaves = [s for s in re.split(r"<section\b[^>]*>", page)[1:] if s.strip()]  # stacks open with a section
        assert leaves and all('<aside class="notes">' in s for s in leaves), f"speaker notes on every slide: {path.name}"
        assert "about minute 0 of 45" in page


# that the site's index links every deck is checked on the site that tests/test_site.py builds anyway
# (test_the_index_links_every_slide_deck, solutions and student site): building it again here cost a whole site build


def test_lists_and_tables_are_never_cut_into_sentences():
    table = "| a | b |\n|---|---|\n" + "".join(f"| row {i} | {'x' * 80} |\n" for i in range(30))
    parts = slides.markdown_parts("### Heading\n\n" + table, "subslide")
    assert parts[0].text == "### Heading" and parts[-1].kind == "notes" and parts[-1].text.strip() == table.strip()
    items = "".join(f"* **item {i}.** {'Some words here. ' * 6}\n" for i in range(12)).strip()
    parts = slides.markdown_parts("### Heading\n\n" + items, "subslide")
    shown, notes = parts[0].text.split("\n\n")[1], parts[-1].text
    assert shown.startswith("* **item 0.**") and notes.startswith("* **item") and shown + "\n" + notes == items
    small = "| a | b |\n|---|---|\n| 1 | 2 |"
    parts = slides.markdown_parts("### Heading\n\n" + "Words. " * 120 + "\n\n" + small, "subslide")
    assert ("subslide", small) in [(p.kind, p.text) for p in parts], "a table that fits gets a slide of its own"
