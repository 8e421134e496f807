"""The instructor's view of a graded batch: ``OUT/report.html`` and ``OUT/gradebook-wide.csv``.

The report is one self-contained HTML file (figures embedded, no script, nothing fetched): per
assignment the score distribution and how many submissions were graded, missing or in error;
the pass rate of every test cell, which shows what the class struggled with; the time each
submission took to grade; every ``error`` row with its reason; and every integrity flag (a test
that passed in the student's kernel and failed the trusted re-check, or a note such as a
repaired notebook). ``gradebook-wide.csv`` has one row per student and one column per
assignment, then the total, for importing into a learning-management system.

``python -m autograder report OUT`` writes both again from ``OUT/rows.json``.
"""

import base64
import html
import io
import statistics
from pathlib import Path

from .grade import _num, _write_csv, _write_text
from .result import Status

WIDE_FILE = "gradebook-wide.csv"
REPORT_FILE = "report.html"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.low td { background: #fde8e8; }
img { max-width: 100%; }
"""


def write_wide_csv(path: Path, assignments: list[str], rows) -> None:
    """One row per student: the score of every assignment (0 when missing or in error, as in
    grades.csv), then the total; a header row names the columns, a second row gives the
    maximum of each."""
    scores = {(r.student_id, r.assignment_id): r.score for r in rows}
    maxima = {r.assignment_id: r.max_score for r in rows}
    table = [["(max)", *(_num(maxima.get(a, 0.0)) for a in assignments),
              _num(sum(maxima.get(a, 0.0) for a in assignments))]]
    for student in sorted({r.student_id for r in rows}):
        row = [scores.get((student, a), 0.0) for a in assignments]
        table.append([student, *map(_num, row), _num(sum(row))])
    _write_csv(path, ["student_id", *assignments, "total"], table)


def pass_rates(rows) -> dict[str, list[tuple[str, int, int]]]:
    """For each assignment, ``(test_id, full marks, graded submissions)`` per test cell, in the
    notebook's order. Only graded rows count: a missing notebook says nothing about a test."""
    rates: dict[str, dict[str, list[int]]] = {}
    for row in rows:
        if row.status is not Status.GRADED:
            continue
        tests = rates.setdefault(row.assignment_id, {})
        for t in row.tests:
            passed_total = tests.setdefault(t.test_id, [0, 0])
            passed_total[0] += t.points >= t.max_points
            passed_total[1] += 1
    return {a: [(test_id, p, n) for test_id, (p, n) in tests.items()] for a, tests in rates.items()}


def _figure(draw) -> str:
    """A matplotlib figure drawn by ``draw(fig)``, as an <img> with the PNG embedded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure()
    try:
        draw(fig)
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", dpi=90)
    finally:
        plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _table(header, body, numeric=(), low=None) -> str:
    cells = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    lines = [f"<table><tr>{cells}</tr>"]
    for i, values in enumerate(body):
        css = ' class="low"' if low and low[i] else ""
        tds = "".join(f'<td class="num">{html.escape(str(v))}</td>' if j in numeric
                      else f"<td>{html.escape(str(v))}</td>" for j, v in enumerate(values))
        lines.append(f"<tr{css}>{tds}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def build_report(assignments: list[str], rows) -> str:
    by_assignment = {a: [r for r in rows if r.assignment_id == a] for a in assignments}
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             "<title>Grading report</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>Grading report</h1>",
             f"<p>{len({r.student_id for r in rows})} students, {len(rows)} rows.</p>"]

    # Summary and score distributions.
    summary = []
    for a, group in by_assignment.items():
        graded = [r.score for r in group if r.status is Status.GRADED]
        count = {s: sum(r.status is s for r in group) for s in Status}
        summary.append((a, _num(group[0].max_score) if group else "", count[Status.GRADED],
                        count[Status.MISSING], count[Status.ERROR],
                        f"{statistics.mean(graded):.2f}" if graded else "",
                        _num(statistics.median(graded)) if graded else ""))
    parts += ["<h2>Scores per assignment</h2>",
              _table(("assignment", "max", "graded", "missing", "error", "mean (graded)", "median (graded)"),
                     summary, numeric={1, 2, 3, 4, 5, 6})]
    if rows:
        def scores(fig):
            axes = fig.subplots(1, len(assignments), squeeze=False)[0]
            fig.set_size_inches(max(4.0, 3.2 * len(assignments)), 2.8)
            for ax, (a, group) in zip(axes, by_assignment.items()):
                ax.hist([r.score for r in group if r.status is not Status.MISSING],
                        bins=min(20, int(group[0].max_score) + 1) if group else 10,
                        range=(0, group[0].max_score if group else 1), color="#4c72b0")
                ax.set_title(a, fontsize=9)
                ax.set_xlabel("score")
            axes[0].set_ylabel("submissions")

        parts.append(_figure(scores))

    # What the class struggled with.
    parts.append("<h2>Pass rate of every test</h2>")
    parts.append("<p>Share of graded submissions with full marks on the test; rows under 50 % are "
                 "highlighted.</p>")
    for a, tests in pass_rates(rows).items():
        body = [(test_id, f"{p}/{n}", f"{100 * p / n:.0f} %") for test_id, p, n in tests]
        parts += [f"<h3>{html.escape(a)}</h3>",
                  _table(("test", "full marks", "pass rate"), body, numeric={1, 2},
                         low=[p < 0.5 * n for _, p, n in tests])]

        def rates(fig, tests=tests):
            fig.set_size_inches(7, 0.25 * len(tests) + 1.0)
            ax = fig.subplots()
            ax.barh([t for t, _, _ in tests][::-1], [100 * p / n for _, p, n in tests][::-1],
                    color="#55a868")
            ax.set_xlim(0, 100)
            ax.set_xlabel("% of graded submissions with full marks")
            ax.tick_params(axis="y", labelsize=7)

        parts.append(_figure(rates))

    # Time.
    timed = [r for r in rows if r.seconds > 0]
    parts.append("<h2>Time per submission</h2>")
    if timed:
        total = sum(r.seconds for r in timed)
        parts.append(f"<p>{len(timed)} submissions graded in this run: {total:.1f} s in all, "
                     f"median {statistics.median(r.seconds for r in timed):.1f} s, "
                     f"slowest {max(r.seconds for r in timed):.1f} s.</p>")

        def times(fig):
            fig.set_size_inches(6, 2.6)
            ax = fig.subplots()
            ax.hist([r.seconds for r in timed], bins=20, color="#8172b2")
            ax.set_xlabel("seconds to grade one submission")
            ax.set_ylabel("submissions")

        parts.append(_figure(times))
    else:
        parts.append("<p>No submission was graded in this run (all results were reused).</p>")

    # Rows and flags that need a look.
    errors = [(r.student_id, r.assignment_id, r.reason) for r in rows if r.status is Status.ERROR]
    parts += ["<h2>Errors</h2>",
              _table(("student", "assignment", "reason"), errors) if errors else "<p>None.</p>"]
    flags = [i for r in rows for i in r.integrity_rows()]
    parts += ["<h2>Integrity flags and notes</h2>",
              _table(("student", "assignment", "test", "in-kernel points", "trusted points", "note"), flags,
                     numeric={3, 4}) if flags else "<p>None.</p>"]
    parts.append("</body></html>")
    return "\n".join(parts)


def write_report(out: Path, assignments: list[str], rows) -> None:
    write_wide_csv(out / WIDE_FILE, assignments, rows)
    _write_text(out / REPORT_FILE, build_report(assignments, rows))
