"""One execution shared (tools/nbcache.py, tools/nbval_runner.py): the notebook tests keep every notebook that passed,
the site and the slides reuse a kept run only while nothing it depends on has changed, and nbval still compares
outputs as before."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import nbcache  # noqa: E402
import nbval_runner  # noqa: E402

# the scheduling flags `make test` gives pytest-xdist (the Makefile's PARALLEL), so these runs split work as it does
MAKE_DIST = re.search(r"-n \$\(TEST_WORKERS\) ([^)]*)\)", (ROOT / "Makefile").read_text()).group(1).split()
ENV = {"CNN_FAST": "1", "OMP_NUM_THREADS": "1", "MPLBACKEND": nbcache.INLINE}


def demo(value: int = 2) -> nbformat.NotebookNode:
    compared = new_code_cell(f"print({value})", metadata={"tags": ["nbval-check-output"]}, execution_count=2,
                             outputs=[new_output("stream", name="stdout", text=f"{value}\n")])
    return new_notebook(cells=[
        new_markdown_cell("# 99 · Demo"),
        new_code_cell("import random, matplotlib.pyplot as plt, ipywidgets as w\nTOKEN = random.random()"),
        compared,
        new_code_cell("plt.plot([1, 2]); print(TOKEN)"),
        new_code_cell("w.IntSlider(3)"),
    ], metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})


@pytest.fixture
def root(tmp_path):
    """A copy of what the key reads: the package and the data folder."""
    for folder in nbcache.INPUTS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "a.py").write_text("x = 1\n")
    return tmp_path


def test_the_key_follows_code_package_data_and_mode_but_not_prose(root):
    key = nbcache.run_key(demo(), ENV, root)
    assert nbcache.run_key(demo(), ENV, root) == key
    prose = demo()
    prose.cells[0].source = "# 99 · Another title"
    assert nbcache.run_key(prose, ENV, root) == key, "Markdown is taken from the notebook as it is now"
    assert nbcache.run_key(demo(3), ENV, root) != key
    tagged = demo()
    tagged.cells[3].metadata["tags"] = ["raises-exception"]
    assert nbcache.run_key(tagged, ENV, root) != key
    assert nbcache.run_key(demo(), {**ENV, "OMP_NUM_THREADS": "2", "MKL_NUM_THREADS": "2"}, root) == key, (
        "make test's workers (1 thread each) serve make site and make slides (2 threads)")
    for env in ({**ENV, "CNN_FAST": "0"}, {**ENV, "MPLBACKEND": "Agg"},
                {**ENV, "CNN_MODEL": "resnet50"}):
        assert nbcache.run_key(demo(), env, root) != key, env
    for folder in nbcache.INPUTS:
        (root / folder / "a.py").write_text("x = 2\n")
        assert nbcache.run_key(demo(), ENV, root) != key, folder
        key = nbcache.run_key(demo(), ENV, root)
    hub = root / "hub"
    hub.mkdir()
    key = nbcache.run_key(demo(), {**ENV, "TORCH_HOME": str(hub)}, root)
    (hub / "resnet50.pth").write_bytes(b"weights")
    assert nbcache.run_key(demo(), {**ENV, "TORCH_HOME": str(hub)}, root) != key, "weights in the torch hub cache"


def test_the_packages_are_the_kernels_not_what_this_process_has_on_its_path(root, monkeypatch):
    """A test that leaves a folder with a package's metadata on sys.path (or changes the working directory) must
    not change the key: in a clean clone's `make test` that made every kept run look stale to the site."""
    key = nbcache.run_key(demo(), ENV, root)
    stray = root / "stray"
    (stray / "stray_package-1.0.dist-info").mkdir(parents=True)
    (stray / "stray_package-1.0.dist-info" / "METADATA").write_text("Name: stray-package\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(stray))
    monkeypatch.chdir(stray)
    assert nbcache.run_key(demo(), ENV, root) == key
    on_kernel_path = {**ENV, "PYTHONPATH": str(stray)}
    assert "stray-package==1.0" in nbcache.packages(on_kernel_path), "the kernel's PYTHONPATH is what it imports"
    assert nbcache.run_key(demo(), on_kernel_path, root) != key


def test_a_complete_run_is_kept_and_reused_with_the_prose_of_now(tmp_path):
    path = tmp_path / "99_demo.ipynb"
    nbformat.write(demo(), path)
    cache = tmp_path / "executed"
    first = nbcache.executed_notebook(path, demo(), env=ENV, cache=cache)
    run = first.metadata["course_run"]
    assert not run["failed"] and not run["reused"] and sorted(run["seconds"]) == ["0", "1", "2", "3"]
    assert run["mode"].startswith("fast mode") and run["mode"].endswith("1 threads")
    assert [p.name for p in cache.iterdir()] == [f"99_demo.{run['key']}.ipynb"]
    assert any("image/png" in o.get("data", {}) for o in first.cells[3].outputs), "figures inline"
    assert "application/vnd.jupyter.widget-state+json" in first.metadata["widgets"]
    changed = demo()
    changed.cells[0].source = "# 99 · Renamed"
    again = nbcache.executed_notebook(path, changed, env=ENV, cache=cache)
    assert again.metadata["course_run"]["reused"] and again.cells[0].source == "# 99 · Renamed"
    assert again.cells[3].outputs == first.cells[3].outputs, "the kept outputs, not a second run (random token)"
    fresh = nbcache.executed_notebook(path, changed, env=ENV, cache=cache, reuse=False)
    assert fresh.cells[3].outputs[0].text != first.cells[3].outputs[0].text


def test_a_failed_run_is_reported_and_never_kept(tmp_path):
    path = tmp_path / "99_demo.ipynb"
    broken = demo()
    broken.cells[3].source = "raise ValueError('on purpose')"
    executed = nbcache.executed_notebook(path, broken, env=ENV, cache=tmp_path / "executed")
    assert executed.metadata["course_run"]["failed"] == "ValueError: on purpose"
    assert not (tmp_path / "executed").exists()


def test_outputs_are_merged_only_into_the_same_code():
    executed = demo()
    executed.cells[3].outputs = [new_output("stream", name="stdout", text="0.5\n")]
    assert nbcache.with_outputs(demo(), executed).cells[3].outputs[0].text == "0.5\n"
    with pytest.raises(ValueError, match="other code cells"):
        nbcache.with_outputs(demo(3), executed)


def test_nbval_compares_what_it_compared_before_figures_aside():
    outputs = [new_output("stream", name="stdout", text="a\n"), new_output("stream", name="stdout", text="b\n"),
               new_output("display_data", data={"image/png": "iVBOR", "text/plain": "<Figure size 640x480>"})]
    assert [o.text for o in nbval_runner.for_comparison(outputs)] == ["a\nb\n"]


def run_pytest(*notebooks: Path, cache: Path, workers: int = 0) -> subprocess.CompletedProcess:
    """pytest on ``notebooks``; ``workers`` > 0 as `make test` runs it (pytest-xdist, each notebook on one worker)."""
    parallel = ["-n", str(workers), *MAKE_DIST] if workers else []
    command = [sys.executable, "-m", "pytest", *map(str, notebooks), "--nbval-lax", "--nbval-current-env", "-q",
               "-p", "no:cacheprovider", "--keep-executed", str(cache), *parallel]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "CNN_FAST": "1"})


@pytest.fixture
def in_repo():
    """A folder inside the repository (the repository's conftest.py applies only there)."""
    folder = ROOT / "build" / f"test-nbcache-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.long  # tens of seconds: `make test` starts this file early (conftest.py)
def test_notebook_tests_keep_a_passing_notebook_for_the_site_and_fail_a_wrong_output(in_repo):
    path, other, cache = in_repo / "99_demo.ipynb", in_repo / "98_demo.ipynb", in_repo / "executed"
    nbformat.write(demo(), path)
    nbformat.write(demo(), other)
    result = run_pytest(path, other, cache=cache, workers=2)  # two workers, both storing into one folder
    assert result.returncode == 0 and "8 passed" in result.stdout, result.stdout[-2000:]
    assert sorted(p.name.split(".")[0] for p in cache.iterdir()) == ["98_demo", "99_demo"], "no partial files left"
    kept = list(cache.glob("99_demo.*.ipynb"))
    run = nbformat.read(kept[0], as_version=4)
    assert any("image/png" in o.get("data", {}) for o in run.cells[3].outputs)
    site_env = {"CNN_FAST": "1", "MPLBACKEND": nbcache.INLINE}
    differs = nbcache.changed(demo(), {**os.environ, **site_env}, run)
    site = nbcache.executed_notebook(path, demo(), env=site_env, cache=cache)
    assert site.metadata["course_run"]["reused"], f"the site and the slides take the test run; changed: {differs}"
    wrong = demo()
    wrong.cells[2].outputs[0].text = "3\n"  # the stored output no longer matches
    nbformat.write(wrong, path)
    result = run_pytest(path, cache=in_repo / "executed-wrong")
    assert result.returncode == 1 and "Cell outputs differ" in result.stdout and "1 failed" in result.stdout
    assert not (in_repo / "executed-wrong").exists(), "a notebook with a failed cell is not kept"


def test_writers_side_by_side_leave_whole_files_and_no_partial_ones(tmp_path):
    """`make test`'s two workers store runs into one folder at the same time."""
    import threading

    cache = tmp_path / "executed"
    threads = [threading.Thread(target=nbcache.store, args=(f"9{i % 2}_demo", demo(), f"k{i}", {"mode": ""}, cache))
               for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 2 * nbcache.KEEP and all(name.endswith(".ipynb") for name in kept), kept
    for path in cache.iterdir():
        stem, key = path.name.split(".")[:2]
        assert nbcache.lookup(stem, key, cache) is not None, path.name


def test_make_tests_runs_serve_make_slides_and_make_site(monkeypatch):
    """The key of a notebook run by `make test` (two workers, one thread each) is the key `make site`, `make slides`
    and `make test-ui` (one process, two threads) look up: CI's test-ui executes no notebook a second time."""
    import build_site
    import testenv

    nb = demo()
    monkeypatch.setenv("TEST_WORKERS", "2")
    monkeypatch.delenv("TEST_THREADS", raising=False)
    worker = {**os.environ, **testenv.test_environment(), "MPLBACKEND": nbcache.INLINE}  # as nbval_runner sets it
    monkeypatch.setenv("TEST_WORKERS", "1")
    site = {**os.environ, **build_site.site_environment(full=False, online=False)}  # as executed_notebook merges it
    assert nbcache.run_key(nb, worker) == nbcache.run_key(nb, site)
    assert nbcache.run_key(nb, {**site, "CNN_FAST": "0"}) != nbcache.run_key(nb, site), "full mode is another run"
