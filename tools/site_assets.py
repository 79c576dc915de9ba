"""The JavaScript the rendered site needs, copied next to its pages so that the site works offline.

    python tools/site_assets.py fetch [--quiet]   (once, online; every make target runs it, a no-op when present)
    python tools/site_assets.py check             (says what is installed)

| asset | version | where it comes from |
|---|---|---|
| MathJax (formulas) | 2.7.9 | PyPI package `jupyter-server-mathjax` (requirements.txt), the version nbconvert's template is written for |
| widget renderer `@jupyter-widgets/html-manager` (`embed.js` + its icon fonts) | 1.0.15 | the npm registry only: no PyPI package ships it. `fetch` downloads the package's tarball with Python (npm itself is not needed), checks its SHA-512 and unpacks the few files into the virtual environment |

No require.js: nbconvert loads it only for the AMD build of the widget renderer (``embed-amd.js``), whose
extra power, loading third-party widget code from a CDN, cannot work offline anyway. ``embed.js`` is the
same renderer built as one plain script with the standard controls and the Output widget inside.

Licences: MathJax Apache-2.0, html-manager BSD-3-Clause (its package.json and the notices of the
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

HTML_MANAGER = "1.0.15"  # the html-manager release for ipywidgets 8 (widget state format 2)
TARBALL = f"https://registry.npmjs.org/@jupyter-widgets/html-manager/-/html-manager-{HTML_MANAGER}.tgz"
INTEGRITY = "sha512-5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
WIDGETS_DIR = Path(sys.prefix) / "share" / "cnn-course" / f"html-manager-{HTML_MANAGER}"
RENDERER = "embed.js"
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


def fetch(url: str = TARBALL, integrity: str = INTEGRITY, target: Path = WIDGETS_DIR) -> Path:
    """Download the widget renderer once (no-op when present), check its hash and unpack it into ``target``."""
    if (target / RENDERER).is_file():
        return target
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    algorithm, expected = integrity.split("-", 1)
    if base64.b64encode(hashlib.new(algorithm, data).digest()).decode() != expected:
        raise RuntimeError(f"{url}: {algorithm} does not match the pinned integrity {integrity}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp, tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile() and _wanted(member.name):
                (Path(tmp) / Path(member.name).name).write_bytes(tar.extractfile(member).read())
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


def main(argv: list[str]) -> int:
    if argv in (["fetch"], ["fetch", "--quiet"]):
        try:
            present = (WIDGETS_DIR / RENDERER).is_file()
            target = fetch()
            if not (present and "--quiet" in argv):
                print(f"widget renderer: {target}")
        except OSError as err:  # offline or blocked: the course runs without it, only the site needs it
            print(f"warning: could not fetch the site's widget renderer ({err}); `make site` needs it: "
                  f"run `python tools/site_assets.py fetch` once online", file=sys.stderr)
            return 1
        return 0
    if argv == ["check"]:
        print(f"MathJax: {_mathjax()}")
        state = "present" if (WIDGETS_DIR / RENDERER).is_file() else "missing"
        print(f"widget renderer: {WIDGETS_DIR / RENDERER} ({state})")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
