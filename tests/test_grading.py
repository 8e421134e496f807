"""The grader end to end, through the real command line: reference solutions earn full marks,
untouched student notebooks earn zero, and broken submissions get an error row without
stopping the batch. Feedback never shows hidden tests."""

import csv
import shutil
import subprocess
import sys

import pytest

from autograder.course import assignments
from autograder.leaks import HIDDEN_TEST_MARKERS, HIDDEN_TESTS_ONLY, find_leaks, secrets_of
from conftest import ROOT, solution_notebook, write_notebook

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def graded(tmp_path_factory, released):
    subs = tmp_path_factory.mktemp("submissions")
    for a in assignments():
        write_notebook(solution_notebook(a), subs / "reference" / a / f"{a}.ipynb")
        blank = subs / "untouched" / a
        blank.mkdir(parents=True)
        shutil.copyfile(released / a / f"{a}.ipynb", blank / f"{a}.ipynb")
    first = assignments()[0]
    (subs / "corrupt" / first).mkdir(parents=True)
    (subs / "corrupt" / first / f"{first}.ipynb").write_text('{"cells": [ {"cell_type": ')
    (subs / "renamed" / first).mkdir(parents=True)
    shutil.copyfile(released / first / f"{first}.ipynb", subs / "renamed" / first / "my copy.ipynb")
    out = tmp_path_factory.mktemp("graded")
    proc = subprocess.run([sys.executable, "-m", "autograder", "grade", str(subs), "--out", str(out),
                           "--jobs", "2", "--quiet"], cwd=ROOT, capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stderr[-3000:]
    with open(out / "grades.csv", newline="") as f:
        rows = {(r["student_id"], r["assignment_id"]): r for r in csv.DictReader(f)}
    return out, rows, proc


def test_grades_csv_has_one_row_per_student_and_assignment(graded):
    out, rows, _ = graded
    header = (out / "grades.csv").read_text().splitlines()[0]
    assert header == "student_id,assignment_id,score,max_score,status"
    students = {"reference", "untouched", "corrupt", "renamed"}
    assert set(rows) == {(s, a) for s in students for a in assignments()}


@pytest.mark.parametrize("assignment", assignments())
def test_reference_solution_earns_full_marks(graded, assignment):
    _, rows, _ = graded
    row = rows["reference", assignment]
    assert row["status"] == "graded", row
    assert float(row["max_score"]) > 0
    assert float(row["score"]) == float(row["max_score"]), row


@pytest.mark.parametrize("assignment", assignments())
def test_untouched_student_notebook_earns_zero(graded, assignment):
    _, rows, _ = graded
    row = rows["untouched", assignment]
    assert row["status"] == "graded", row
    assert float(row["score"]) == 0.0, row


def test_broken_submissions_are_reported_in_their_rows(graded):
    _, rows, _ = graded
    first, others = assignments()[0], assignments()[1:]
    assert rows["corrupt", first]["status"].startswith("error: ")
    assert "not a valid notebook" in rows["corrupt", first]["status"]
    assert rows["renamed", first]["status"] == "graded"  # the one notebook, under another name
    for a in others:
        assert rows["corrupt", a]["status"] == "missing"
        assert rows["renamed", a]["status"] == "missing"
    for key in [("corrupt", first), ("renamed", first)]:  # renamed: the untouched notebook
        assert float(rows[key]["score"]) == 0.0


def test_tests_csv_breaks_scores_down_per_test_cell(graded):
    out, rows, _ = graded
    with open(out / "tests.csv", newline="") as f:
        tests = list(csv.DictReader(f))
    for (student, assignment), row in rows.items():
        mine = [t for t in tests if (t["student_id"], t["assignment_id"]) == (student, assignment)]
        assert mine, (student, assignment)
        assert sum(float(t["points"]) for t in mine) == pytest.approx(float(row["score"]))
        assert sum(float(t["max_points"]) for t in mine) == pytest.approx(float(row["max_score"]))
    failed = [t for t in tests if t["student_id"] == "untouched"]
    assert all(t["reason"] for t in failed), "every failed test says why"
    assert any("NotImplementedError" in t["reason"] for t in failed)


def test_feedback_is_written_and_shows_no_hidden_tests(graded):
    out, _, _ = graded
    files = sorted((out / "feedback").rglob("*.html"))
    assert {p.relative_to(out / "feedback").parts[:2] for p in files} == {
        (s, a) for s in ("reference", "untouched") for a in assignments()} | {("renamed", assignments()[0])}
    for path in files:
        assignment = path.parent.name
        hidden = secrets_of(assignment, HIDDEN_TESTS_ONLY)
        assert hidden, f"{assignment} has no hidden tests"
        leaks = find_leaks(path.read_text(), hidden, markers=HIDDEN_TEST_MARKERS)
        assert not leaks, f"{path} shows hidden tests: {leaks[:3]}"


def test_feedback_on_an_unsolved_notebook_shows_no_solution_code(graded):
    """The reference student's feedback shows their own (reference) code; a student who solved
    nothing must not find the instructor's solutions, nor hidden tests, in theirs."""
    out, _, _ = graded
    files = sorted((out / "feedback" / "untouched").rglob("*.html")) + \
        sorted((out / "feedback" / "renamed").rglob("*.html"))
    assert len(files) == len(assignments()) + 1
    for path in files:
        secrets = secrets_of(path.parent.name)
        assert secrets
        leaks = find_leaks(path.read_text(), secrets)
        assert not leaks, f"{path} shows solution or hidden-test text: {leaks[:3]}"


def test_in_kernel_and_trusted_results_agree_on_honest_submissions(graded):
    """Every test cell works under the trusted re-check: for the reference solutions and the
    untouched notebooks, nbgrader's in-kernel verdict and the re-check's are the same."""
    out, _, _ = graded
    with open(out / "integrity.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    disagreements = [r for r in rows if r["student_id"] in ("reference", "untouched") and r["test_id"]]
    assert not disagreements, disagreements
    assert [r["note"] for r in rows if r["student_id"] == "renamed"] == ["notebook handed in as 'my copy.ipynb'"]
