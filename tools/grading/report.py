"""What grading writes: grades.csv, one feedback page per student and assignment, and the printed summary.

The feedback says what passed, what failed and why in a student's words: the visible check's own message, and a
failed hidden variant by its description ("three non-square images (9 x 13)") — never the hidden checks' code,
the solutions, or anything the student's code printed.
"""

from __future__ import annotations

import csv
import html
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

COLUMNS = ("student", "assignment", "exercise", "points", "max_points", "status")
STATUSES = ("passed", "failed", "not attempted", "error", "timeout", "tampered", "uses reference")


@dataclass
class Row:
    """One exercise of one submission, graded."""

    student: str
    assignment: str
    exercise: str
    points: float
    max_points: float
    status: str
    message: str = ""
    runs: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    restored: int = 0
    units: list = field(default_factory=list)  # [label, seconds since the job started]: where the time went

    def csv(self) -> list[str]:
        return [self.student, self.assignment, self.exercise, f"{self.points:g}", f"{self.max_points:g}", self.status]


def write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        writer.writerows(row.csv() for row in rows)


def explanation(row: Row, *, timeout: float) -> str:
    """The status of one exercise in words a student understands (plain text)."""
    m = row.message
    if row.status == "passed":
        hidden = [r for r in row.runs[1:] if not r.get("skipped")]
        return (f"Your function agrees with the course's reference on the check in your notebook and on "
                f"{len(hidden)} hidden variant{'s' if len(hidden) != 1 else ''} (other random inputs, shapes and "
                "sizes).")
    if row.status == "not attempted":
        return "Not written yet: the exercise cell still raises NotImplementedError. Replace that line with your code."
    if row.status == "failed":
        visible = row.runs[0] if row.runs else {"ok": False}
        if visible.get("ok"):
            failed = next((r for r in row.runs if not r.get("ok")), {})
            return (f"Your function passes the check in your notebook, but not a hidden variant of it "
                    f"({failed.get('what', 'other inputs')}): {failed.get('message', m)}. A function that only works "
                    "for the inputs the visible check happens to use is not finished yet.")
        return f"The check in your notebook fails: {m}"
    if row.status == "timeout":
        return (f"{m}. Each cell may run {timeout:g} s while grading; it was stopped there (an endless loop, or far "
                "too much work for the small inputs of the check?).")
    if row.status == "error":
        return f"Your code could not be graded: {m}."
    if row.status == "tampered":
        if m in ("edited", "deleted"):
            return (f"The check cell of this exercise was {m}. Grading always runs the original check, and an exercise "
                    "whose check was changed scores no points. If this was an accident, ask your lecturer.")
        return (f"{m[:1].upper()}{m[1:]}. Grading cannot trust a check that your code changed, so this exercise "
                "scores no points.")
    if row.status == "uses reference":
        return (f"{m[:1].upper()}{m[1:]}. The exercise is to write this function yourself; calling the course's "
                "version scores no points.")
    return m


def _runs_html(row: Row) -> str:
    if not row.runs or row.status in ("tampered", "not attempted"):
        return ""
    items = []
    for run in row.runs:
        if run.get("skipped"):
            continue
        mark = "passed" if run.get("ok") else "failed"
        detail = "" if run.get("ok") else f": {html.escape(run.get('message', ''))}"
        items.append(f"<li class='{mark}'>{html.escape(run['what'])} — {mark}{detail}</li>")
    return f"<ul class='runs'>{''.join(items)}</ul>" if items else ""


STYLE = """body{font-family:system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.5rem;text-align:left;
vertical-align:top}.passed{color:#1a7f37}.failed,.error,.timeout,.tampered,.uses-reference{color:#b42318}
.not-attempted{color:#777}ul.runs{margin:.3rem 0 0 1rem;padding:0;font-size:.9em}code{background:#f4f4f4}"""


def feedback_page(student: str, assignment: str, rows: list[Row], *, timeout: float) -> str:
    total, best = sum(r.points for r in rows), sum(r.max_points for r in rows)
    body = []
    for row in rows:
        status = html.escape(row.status)
        body.append(f"<tr><td><code>{html.escape(row.exercise)}</code></td>"
                    f"<td class='{status.replace(' ', '-')}'>{status}</td><td>{row.points:g} / {row.max_points:g}</td>"
                    f"<td>{html.escape(explanation(row, timeout=timeout))}{_runs_html(row)}</td></tr>")
    restored = max((r.restored for r in rows), default=0)
    note = ""
    if restored:
        cells, verb = ("cell", "was") if restored == 1 else ("cells", "were")
        note = (f"<p>{restored} read-only {cells} of the course that you had changed {verb} run in the original "
                "version (this costs nothing).</p>")
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(assignment)}: feedback "
            f"for {html.escape(student)}</title><style>{STYLE}</style></head><body>"
            f"<h1>{html.escape(assignment)}</h1><p>Feedback for <b>{html.escape(student)}</b>: "
            f"<b>{total:g} of {best:g}</b> points.</p>"
            "<table><tr><th>exercise</th><th>status</th><th>points</th><th>what grading found</th></tr>"
            f"{''.join(body)}</table>{note}<p>Grading ran each exercise's check as in your notebook, plus hidden "
            "variants of it (other random inputs, other shapes and sizes), in a fresh kernel with no network.</p>"
            "</body></html>\n")


def write_feedback(rows: list[Row], folder: Path, *, timeout: float) -> list[Path]:
    groups: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        groups[row.student, row.assignment].append(row)
    written = []
    for (student, assignment), group in sorted(groups.items()):
        path = folder / student / f"{assignment}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(feedback_page(student, assignment, group, timeout=timeout), encoding="utf-8")
        written.append(path)
    return written


def summary(rows: list[Row], *, seconds: float, submissions: int, workers: int, isolation: str) -> str:
    """Per exercise: how many passed and the mean points; then the statuses and the time per submission."""
    by_exercise: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        by_exercise[row.assignment, row.exercise].append(row)
    lines = [f"{'assignment':<26}{'exercise':<22}{'passed':>10}{'mean points':>13}"]
    for (assignment, exercise), group in sorted(by_exercise.items()):
        passed = sum(r.status == "passed" for r in group)
        mean = sum(r.points for r in group) / len(group)
        lines.append(f"{assignment:<26}{exercise:<22}{f'{passed}/{len(group)}':>10}"
                     f"{f'{mean:.2f} / {group[0].max_points:g}':>13}")
    counts = {s: sum(r.status == s for r in rows) for s in STATUSES}
    lines.append("statuses: " + ", ".join(f"{s} {n}" for s, n in counts.items() if n))
    per = seconds / submissions if submissions else 0.0
    lines.append(f"{submissions} submissions, {len(rows)} exercises graded in {seconds:.1f} s with {workers} "
                 f"worker(s): {per:.2f} s per submission; isolation: {isolation}")
    return "\n".join(lines)
