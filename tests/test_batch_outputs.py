"""What an instructor gets from a graded batch besides the grades: a batch split in three shards
and merged gives the same files as one run; the class report and the one-row-per-student CSV
say what the batch holds; the batch's nbgrader gradebook exports the same scores as grades.csv.

One small class of the test course (``hostile_corpus``): two reference solutions, an untouched
notebook, a partly solved one, a notebook that is not JSON, and a student who handed in nothing.
"""

import copy
import csv
import html
import re
import subprocess
import sys

import nbformat
import pytest

from autograder import sandbox
from autograder.report import REPORT_FILE, WIDE_FILE
from conftest import ROOT
from hostile_corpus import ASSIGNMENT, FULL, SOLUTION_MEAN, released_course

SHARDS = 3
COMPARED = ("grades.csv", "tests.csv", "integrity.csv", WIDE_FILE)
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox.check() is not None, reason=f"no sandbox here: {sandbox.check()}")]


def _stub_mean(reference):
    """The reference with one function left unsolved: a partly done notebook."""
    nb = copy.deepcopy(reference)
    stub = SOLUTION_MEAN.split("### BEGIN SOLUTION")[0] + "raise NotImplementedError()"
    for cell in nb.cells:
        if cell.source.strip() == SOLUTION_MEAN.strip():
            cell.source = stub
            return nb
    raise AssertionError("the test course has no mean_value solution cell")


def run(env, *args):
    result = subprocess.run([sys.executable, "-m", "autograder", *map(str, args)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    return result


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    submissions, env, reference, blank = released_course(root)
    handed_in = {"ref_a": reference, "ref_b": reference, "blank": blank, "partial": _stub_mean(reference),
                 "broken": b'{"cells": [ this is not JSON'}
    for student, notebook in handed_in.items():
        folder = submissions / student / ASSIGNMENT
        folder.mkdir(parents=True)
        path = folder / f"{ASSIGNMENT}.ipynb"
        path.write_bytes(notebook) if isinstance(notebook, bytes) else nbformat.write(notebook, path)
    (submissions / "absent").mkdir()  # a student who handed in nothing: a 'missing' row

    whole = run(env, "grade", submissions, "--out", root / "whole", "--jobs", "2", "--quiet")
    assert whole.returncode == 0, whole.stderr
    for i in range(SHARDS):
        part = run(env, "grade", submissions, "--out", root / f"shard{i}", "--jobs", "1", "--quiet",
                   "--shard", f"{i}/{SHARDS}")
        assert part.returncode == 0, part.stderr
    merged = run(env, "merge", *(root / f"shard{i}" for i in range(SHARDS)), "--out", root / "merged")
    assert merged.returncode == 0, merged.stderr
    return root, env


def _csv(path):
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_the_shards_split_the_batch(batch):
    root, _ = batch
    graded = [_csv(root / f"shard{i}" / "grades.csv") for i in range(SHARDS)]
    assert sorted(len(rows) for rows in graded) == [2, 2, 2]
    keys = [(r["student_id"], r["assignment_id"]) for rows in graded for r in rows]
    assert len(set(keys)) == 6


@pytest.mark.parametrize("name", COMPARED)
def test_merged_shards_equal_one_run(batch, name):
    root, _ = batch
    whole, merged = (root / "whole" / name).read_text(), (root / "merged" / name).read_text()
    assert merged == whole, f"{name} differs between the merged shards and one run"


def test_merged_shards_carry_every_feedback_file(batch):
    root, _ = batch
    whole = sorted(p.relative_to(root / "whole") for p in (root / "whole" / "feedback").rglob("*.html"))
    merged = sorted(p.relative_to(root / "merged") for p in (root / "merged" / "feedback").rglob("*.html"))
    assert whole and merged == whole


def test_the_grades_are_the_ones_deserved(batch):
    root, _ = batch
    grades = {r["student_id"]: r for r in _csv(root / "whole" / "grades.csv")}
    assert float(grades["ref_a"]["score"]) == float(grades["ref_b"]["score"]) == FULL
    assert float(grades["blank"]["score"]) == 0
    assert 0 < float(grades["partial"]["score"]) < FULL
    assert grades["broken"]["status"].startswith("error") and grades["absent"]["status"] == "missing"


def test_merge_refuses_an_incomplete_or_mixed_set_of_shards(batch, tmp_path):
    root, env = batch
    shards = [root / f"shard{i}" for i in range(SHARDS)]
    missing = run(env, "merge", shards[0], shards[1], "--out", tmp_path / "a")
    assert missing.returncode == 2 and "missing: [2]" in missing.stderr, missing.stderr
    twice = run(env, "merge", shards[0], shards[0], shards[1], shards[2], "--out", tmp_path / "b")
    assert twice.returncode == 2 and "given twice: [0]" in twice.stderr, twice.stderr
    other = run(env, "merge", root / "whole", shards[1], "--out", tmp_path / "c")
    assert other.returncode == 2, other.stderr
    assert not (tmp_path / "a" / "grades.csv").exists()


def test_wide_csv_has_one_row_per_student_with_the_total(batch):
    root, _ = batch
    grades = {r["student_id"]: float(r["score"]) for r in _csv(root / "whole" / "grades.csv")}
    rows = _csv(root / "whole" / WIDE_FILE)
    assert rows[0]["student_id"] == "(max)" and float(rows[0][ASSIGNMENT]) == FULL
    students = {r["student_id"]: r for r in rows[1:]}
    assert set(students) == set(grades)
    for student, row in students.items():
        assert float(row[ASSIGNMENT]) == grades[student]
        assert float(row["total"]) == grades[student]


def test_report_shows_the_pass_rate_of_every_test(batch):
    root, _ = batch
    report = (root / "whole" / REPORT_FILE).read_text()
    graded = {r["student_id"] for r in _csv(root / "whole" / "grades.csv") if r["status"] == "graded"}
    tests = [r for r in _csv(root / "whole" / "tests.csv") if r["student_id"] in graded]
    assert len(graded) == 4
    for test_id in dict.fromkeys(r["test_id"] for r in tests):
        rows = [r for r in tests if r["test_id"] == test_id]
        full = sum(float(r["points"]) == float(r["max_points"]) for r in rows)
        cell = rf'<tr( class="low")?><td>{re.escape(test_id)}</td><td class="num">{full}/{len(rows)}</td>'
        assert re.search(cell, report), f"the report's pass rate of {test_id} is not {full}/{len(rows)}"


def test_report_lists_errors_and_is_self_contained(batch):
    root, env = batch
    out = root / "whole"
    report = (out / REPORT_FILE).read_text()
    broken = next(r for r in _csv(out / "grades.csv") if r["student_id"] == "broken")
    reason = broken["status"].split(": ", 1)[1]
    assert html.escape(reason) in report, "the error row's reason is not in the report"
    assert report.count("data:image/png;base64,") >= 3, "score, pass-rate and time figures"
    assert not re.search(r'(src|href)="https?://', report), "the report fetches something"
    again = run(env, "report", out)
    assert again.returncode == 0, again.stderr
    assert (out / REPORT_FILE).read_text() == report, "the report is not a function of rows.json"


def test_nbgrader_export_of_the_gradebook_gives_the_same_scores(batch, tmp_path):
    root, _ = batch
    for out in (root / "whole", root / "merged"):
        exported = tmp_path / f"{out.name}.csv"
        result = subprocess.run(
            [sys.executable, "-m", "nbgrader", "export", f"--CourseDirectory.root={tmp_path}",
             f"--CourseDirectory.db_url=sqlite:///{out / 'gradebook.db'}", f"--to={exported}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        scores = {(r["student_id"], r["assignment"]): float(r["score"]) for r in _csv(exported)}
        grades = {(r["student_id"], r["assignment_id"]): float(r["score"]) for r in _csv(out / "grades.csv")}
        assert scores == grades, f"{out.name}: nbgrader export {scores} != grades.csv {grades}"
