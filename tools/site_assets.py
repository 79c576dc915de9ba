"""The JavaScript the rendered site needs, copied next to its pages so that the site works offline.

    python tools/site_assets.py fetch [--quiet]   (once, online; every make target runs it, a no-op when present)
    python tools/site_assets.py check             (says what is installed)

| asset | version | where it comes from |
|---|---|---|
| MathJax (formulas) | 2.7.9 | PyPI package `jupyter-server-mathjax` (requirements.txt), the version nbconvert's template is written for |
| widget renderer `@jupyter-widgets/html-manager` (`embed.js` + its icon fonts) | 1.0.15 | the npm registry only: no PyPI package ships it. `fetch` downloads the package's tarball with Python (npm itself is not needed), checks its SHA-512 and unpacks the few files into the virtual environment |
| reveal.js (the slides of `make slides`: `dist/`, the white theme and its font, the speaker-notes plugin) | 5.2.1 | the npm registry, fetched the same way |

No require.js: nbconvert loads it only for the AMD build of the widget renderer (``embed-amd.js``), whose
extra power, loading third-party widget code from a CDN, cannot work offline anyway. ``embed.js`` is the
same renderer built as one plain script with the standard controls and the Output widget inside.

Licences: MathJax Apache-2.0, reveal.js MIT (its LICENSE travels with it), html-manager BSD-3-Clause (its package.json and the notices of the
libraries bundled in it, embed.js.LICENSE.txt, travel with it).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import io
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable

HTML_MANAGER = "1.0.15"  # the html-manager release for ipywidgets 8 (widget state format 2)
TARBALL = f"https://registry.npmjs.org/@jupyter-widgets/html-manager/-/html-manager-{HTML_MANAGER}.tgz"
INTEGRITY = "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
WIDGETS_DIR = Path(sys.prefix) / "share" / "cnn-course" / f"html-manager-{HTML_MANAGER}"
RENDERER = "embed.js"
REVEAL = "5.2.1"  # the slides' presentation framework (tools/build_slides.py)
REVEAL_TARBALL = f"https://registry.npmjs.org/reveal.js/-/reveal.js-{REVEAL}.tgz"
REVEAL_INTEGRITY = "sha512-r7//6mIM5p34hFiDMvYfXgyjXqGRta+/psd9YtytsgRlrpRzFv4RbH76TXd2qD+7ZPZEbpBDhdRhJaFgfQ7zNQ=="
REVEAL_DIR = Path(sys.prefix) / "share" / "cnn-course" / f"reveal.js-{REVEAL}"
REVEAL_MAIN = "dist/reveal.js"
MATHJAX_CONFIG = "TeX-AMS-MML_HTMLorMML-full,Safe"  # the one combined configuration the package ships
# It ships the STIX-Web fonts only: use them, never look for the TeX fonts (a failed load on every page).
MATHJAX_FONTS = ('MathJax.Hub.Config({"HTML-CSS": '
                 '{availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});')


class AssetsMissing(RuntimeError):
    """An asset of the site is not installed; the message says how to install it."""


def _mathjax() -> Path:
    spec = importlib.util.find_spec("jupyter_server_mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise AssetsMissing("MathJax comes from the PyPI package jupyter-server-mathjax: `make install`")
    return Path(list(spec.submodule_search_locations)[0]) / "static"


def _wanted(name: str) -> bool:
    """The files of the npm package the site needs: the renderer, its icon fonts, licence notices."""
    return name in (f"package/dist/{RENDERER}", "package/package.json", "package/dist/embed.js.LICENSE.txt") or (
        name.startswith("package/dist/") and name.endswith((".woff2", ".woff")))


def _wanted_reveal(name: str) -> bool:
    """The files of reveal.js the slides need: the core, the white theme and its font, the notes plugin, licences."""
    return name in ("package/LICENSE", "package/package.json", "package/dist/reveal.js", "package/dist/reveal.css",
                    "package/dist/reset.css", "package/dist/theme/white.css", "package/plugin/notes/notes.js") or (
        name.startswith("package/dist/theme/fonts/source-sans-pro/") and name.endswith((".css", ".woff", "LICENSE")))


def fetch(url: str = TARBALL, integrity: str = INTEGRITY, target: Path = WIDGETS_DIR, *,
          wanted: Callable[[str], bool] = _wanted, marker: str = RENDERER, keep_tree: bool = False) -> Path:
    """Download an npm package once (no-op when ``target/marker`` is present), check its hash and unpack the
    ``wanted`` files into ``target`` (flat, or with their folders below ``package/`` when ``keep_tree``)."""
    if (target / marker).is_file():
        return target
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    algorithm, expected = integrity.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
        raise RuntimeError(f"{url}: {algorithm} does not match the pinned integrity {integrity}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and wanted(member.name):
                name = Path(member.name).relative_to("package") if keep_tree else Path(Path(member.name).name)
                (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
                (Path(tmp) / name).write_bytes(tar.extractfile(member).read())
        Path(tmp).chmod(0o755)
        shutil.rmtree(target, ignore_errors=True)
        Path(tmp).rename(target)
    return target


def install_into(site: Path) -> dict[str, str]:
    """Copy every asset into ``site/assets`` and return the exporter settings that point at them.

    Raises:
        AssetsMissing: Something is not installed (the message says how to install it).
    """
    if not (WIDGETS_DIR / RENDERER).is_file():
        raise AssetsMissing(f"the widget renderer is not installed in {WIDGETS_DIR}: run "
                            "`python tools/site_assets.py fetch` once while online (`make install` does)")
    assets = site / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copytree(_mathjax(), assets / "MathJax", dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    shutil.copytree(WIDGETS_DIR, assets / "html-manager", dirs_exist_ok=True)
    return {"mathjax_url": f"assets/MathJax/MathJax.js?config={MATHJAX_CONFIG}",
            "widget_renderer_url": f"assets/html-manager/{RENDERER}"}


def fetch_reveal() -> Path:
    """Download reveal.js once (no-op when present), checked against its pinned SHA-512."""
    return fetch(REVEAL_TARBALL, REVEAL_INTEGRITY, REVEAL_DIR, wanted=_wanted_reveal, marker=REVEAL_MAIN,
                 keep_tree=True)


def install_slides_into(out: Path) -> dict[str, str]:
    """Copy the site's assets and reveal.js into ``out/assets``; the exporter settings that point at them.

    Raises:
        AssetsMissing: Something is not installed (the message says how to install it).
    """
    if not (REVEAL_DIR / REVEAL_MAIN).is_file():
        raise AssetsMissing(f"reveal.js is not installed in {REVEAL_DIR}: run "
                            "`python tools/site_assets.py fetch` once while online (`make install` does)")
    urls = install_into(out)
    shutil.copytree(REVEAL_DIR, out / "assets" / "reveal.js", dirs_exist_ok=True)
    return {**urls, "reveal_url_prefix": "assets/reveal.js"}


def main(argv: list[str]) -> int:
    if argv in (["fetch"], ["fetch", "--quiet"]):
        try:
            present = (WIDGETS_DIR / RENDERER).is_file() and (REVEAL_DIR / REVEAL_MAIN).is_file()
            target, reveal = fetch(), fetch_reveal()
            if not (present and "--quiet" in argv):
                print(f"widget renderer: {target}\nreveal.js: {reveal}")
        except OSError as err:  # offline or blocked: the course runs without it, only the site needs it
            print(f"warning: could not fetch the site's widget renderer or reveal.js ({err}); `make site` and "
                  f"`make slides` need them: run `python tools/site_assets.py fetch` once online", file=sys.stderr)
            return 1
        return 0
    if argv == ["check"]:
        print(f"MathJax: {_mathjax()}")
        state = "present" if (WIDGETS_DIR / RENDERER).is_file() else "missing"
        print(f"widget renderer: {WIDGETS_DIR / RENDERER} ({state})")
        state = "present" if (REVEAL_DIR / REVEAL_MAIN).is_file() else "missing"
        print(f"reveal.js: {REVEAL_DIR} ({state})")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
