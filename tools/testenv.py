"""The one test environment, shared by `make test`/`unit`/`notebooks`, `make refresh` and the test helpers.

    python tools/testenv.py COMMAND [ARG ...]     run COMMAND in the test environment

Fast mode, offline, no network for any process of the run (tools/netblock), empty torch hub and Hugging Face
caches (results never depend on which weights this machine happens to have), the course's own package first
on the path, no model forced, and a pinned number of threads: torch's default on a loaded 2-core machine
oversubscribes the cores and makes training steps 10x slower. ``TEST_THREADS`` overrides the thread
count (default: 2, or fewer on a machine with fewer cores).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def workers() -> int:
    """How many pytest workers run side by side: ``TEST_WORKERS`` (default 1; `make test` passes 2)."""
    value = os.environ.get("TEST_WORKERS") or "1"
    if not value.isdigit() or int(value) < 1:
        raise SystemExit(f"TEST_WORKERS must be a whole number >= 1; got {value!r}")
    return int(value)


def threads() -> str:
    """The threads per worker: ``TEST_THREADS``, else min(2, cores) shared by the workers (at least 1 each).

    Workers times threads stays within the cores, so parallel workers never oversubscribe the machine.
    """
    return os.environ.get("TEST_THREADS") or str(max(1, min(2, os.cpu_count() or 1) // workers()))


def test_environment(root: Path = ROOT) -> dict[str, str]:
    """The variables the test run sets (each one replaces what the shell had)."""
    for cache in ("torch-home", "hf-home"):
        (root / "build" / cache).mkdir(parents=True, exist_ok=True)
    path = [str(root), str(root / "tools" / "netblock")]
    return {
        "CNN_FAST": "1", "CNN_OFFLINE": "1", "CNN_BLOCK_NETWORK": "1", "CNN_MODEL": "", "CNN_VERIFY_WEIGHTS": "",
        "CNN_DATA_DIR": "", "CNN_SMOKE": "", "MPLBACKEND": "Agg", "TORCH_HOME": str(root / "build" / "torch-home"),
        "HF_HOME": str(root / "build" / "hf-home"),
        "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": threads(), "MKL_NUM_THREADS": threads(),
        "PYTHONHASHSEED": "0", "TQDM_DISABLE": "1",
    }


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    env = {**os.environ, **test_environment()}
    os.execvpe(argv[0], argv, env)
    return 1  # not reached


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
