"""Execute a notebook: the one executor used by the refresh tool, the site builder and the notebook tests.

    from nbexec import execute          (tools/ on sys.path)
    executed = execute(notebook, cwd=path.parent, timeout=600)

Keeping one entry point means a fix to how notebooks are executed (kernel start, timeouts, progress)
applies everywhere at once.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import nbformat
from nbclient import NotebookClient


def execute(notebook: nbformat.NotebookNode, *, cwd: str | Path, timeout: int = 600,
            env: Mapping[str, str] | None = None) -> nbformat.NotebookNode:
    """Run every cell of ``notebook`` in a fresh python3 kernel started in ``cwd``; raises on the first error.

    Args:
        notebook: The notebook (executed in place and returned).
        cwd: The kernel's working directory (the notebook's folder).
        timeout: Seconds allowed per cell.
        env: Environment variables for the kernel on top of this process's environment.
    """
    saved = dict(os.environ)
    try:
        if env:
            os.environ.update(env)  # the kernel inherits this process's environment at start
        client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(cwd)}})
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return notebook
