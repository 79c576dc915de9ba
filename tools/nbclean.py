"""The committed form of a notebook, and the git filter that keeps notebooks in that form.

    python tools/nbclean.py < in.ipynb > out.ipynb     the git clean filter (stdin -> stdout)
    python tools/nbclean.py --in-place NB.ipynb ...   normalize notebooks on disk (no execution)
    python tools/nbclean.py --install [--quiet]       register the filter in this clone's git config

The committed form keeps what a notebook *is* and drops what a session leaves behind:
- only the text output of cells tagged ``nbval-check-output`` (what nbval compares), with execution
  counts numbered as a fresh run numbers them; every other output and count cleared;
- the kernelspec exactly as JupyterLab writes it for the python3 kernel of a pip/venv install,
  ``language_info`` without the Python version, no saved widget state;
- no view state in cell metadata (timings, scroll and collapse flags).

``.gitattributes`` applies the filter to ``*.ipynb``; the set-up (``make install``) runs ``--install``.
A notebook opened, run and saved in JupyterLab then shows no difference (``git diff`` is empty) and a commit
never carries figures. (``git status`` lists a file whose size changed until ``git add``, which then stages
nothing: git takes a size change for a change before asking the filter.) ``make refresh`` writes the same
form, so the filter does not change its output.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nbformat

COMPARED = "nbval-check-output"  # the cell tag nbval reads: compare this cell's output
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
VIEW_STATE = ("execution", "scrolled", "collapsed", "ExecuteTime")  # cell metadata a session writes
FILTER = "nbclean"
ATTRIBUTES = f"*.ipynb filter={FILTER}"


def is_compared(cell: nbformat.NotebookNode) -> bool:
    """Whether nbval compares this code cell's output (it carries the ``nbval-check-output`` tag)."""
    return cell.cell_type == "code" and COMPARED in cell.get("metadata", {}).get("tags", [])


def keep_text(outputs: list) -> list:
    """The stdout and text/plain results of ``outputs``, consecutive stdout chunks merged (as JupyterLab does)."""
    kept: list = []
    for out in outputs:
        if out.output_type == "stream" and out.name == "stdout":
            if kept and kept[-1].output_type == "stream" and kept[-1].name == "stdout":
                kept[-1].text += out.text
                continue
            kept.append(out)
        elif out.output_type in ("execute_result", "display_data") and "text/plain" in out.get("data", {}):
            if out.output_type == "display_data" and not set(out.data) <= {"text/plain"}:
                continue  # a figure or widget: its text/plain is only a repr
            out.data = {"text/plain": out.data["text/plain"]}
            out.metadata = {}
            kept.append(out)
    return kept


def normalize(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Bring ``notebook`` (in place) into its committed form and return it."""
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata.get("language_info", {}).pop("version", None)
    notebook.metadata.pop("widgets", None)
    count = 0
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        for key in VIEW_STATE:
            cell.metadata.pop(key, None)
        view = cell.metadata.get("jupyter", {})
        view.pop("outputs_hidden", None)
        if "jupyter" in cell.metadata and not view:
            del cell.metadata["jupyter"]
        count += bool(cell.source.strip())  # a fresh run (nbclient, Run All) numbers the non-empty code cells
        cell.outputs = keep_text(cell.outputs) if is_compared(cell) else []
        # nbval skips a cell whose execution_count is None ("unrun"), so compared cells keep theirs
        cell.execution_count = count if cell.outputs else None
    return notebook


def clean_text(text: str) -> str:
    """The committed form of a notebook given as JSON text (the git filter's job)."""
    out = nbformat.writes(normalize(nbformat.reads(text, as_version=nbformat.NO_CONVERT)))
    return out if out.endswith("\n") else out + "\n"


def install(repo: Path) -> bool:
    """Register the clean filter in ``repo``'s git config; False if it was registered already."""
    command = ".venv/bin/python tools/nbclean.py"  # git runs filters in the repository's root
    wanted = {f"filter.{FILTER}.clean": command, f"filter.{FILTER}.smudge": "cat"}
    current = {key: subprocess.run(["git", "-C", str(repo), "config", "--local", "--get", key],
                                   capture_output=True, text=True).stdout.strip() for key in wanted}
    if current == wanted:
        return False
    for key, value in wanted.items():
        subprocess.run(["git", "-C", str(repo), "config", "--local", key, value], check=True)
    return True


def main(argv: list[str]) -> int:
    if not argv:
        sys.stdout.write(clean_text(sys.stdin.read()))
        return 0
    if argv[0] == "--install":
        root = Path(__file__).resolve().parent.parent
        if (root / ".git").exists() and (install(root) or "--quiet" not in argv):
            print(f"git filter '{FILTER}' registered: notebooks are committed without outputs (tools/nbclean.py)")
        return 0
    if argv[0] == "--in-place" and len(argv) > 1:
        for name in argv[1:]:
            path = Path(name)
            before = path.read_text(encoding="utf-8")
            after = clean_text(before)
            if after != before:
                path.write_text(after, encoding="utf-8")
                print(f"normalized {path}")
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
