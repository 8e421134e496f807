"""Hostile submissions, graded through the real `python -m autograder grade`: each gets the
score it deserves and a status reason where it failed, and the rest of the batch is graded."""

import csv

import pytest

from autograder import sandbox
from autograder.leaks import HIDDEN_TEST_MARKERS, HIDDEN_TESTS_ONLY, find_leaks, secrets_of
from conftest import ROOT
from hostile_corpus import ASSIGNMENT, FULL, _cases, run_corpus

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox.check() is not None, reason=f"no sandbox here: {sandbox.check()}")]

CASES = _cases({"real_solutions": "", "course": "", "submissions": "", "out": "", "port": 0})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return run_corpus(tmp_path_factory.mktemp("hostile"), ROOT)


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_each_submission_gets_the_score_it_deserves(corpus, case):
    rows, _, out, _ = corpus
    row = rows[case.student]
    # Each test's points and reason, so that a failure here says which test went wrong and why.
    with open(out / "tests.csv", newline="") as f:
        per_test = [r for r in csv.DictReader(f) if r["student_id"] == case.student]
    assert row["assignment_id"] == ASSIGNMENT
    assert float(row["max_score"]) == FULL
    assert float(row["score"]) == case.score, f"{case.what}: {row}; tests: {per_test}"
    assert row["status"].startswith(case.status), f"{case.what}: {row}; tests: {per_test}"
    if case.status == "error":
        assert len(row["status"]) > len("error: "), "an error row says why"


def test_every_submission_has_its_row(corpus):
    rows, cases, _, _ = corpus
    assert set(rows) == {c.student for c in cases}


def test_exploits_that_fool_nbgrader_in_the_kernel_are_reported(corpus):
    """These beat plain nbgrader (its in-kernel verdict gives points) — the trusted re-check
    takes the points away and lists the submission for the instructor."""
    _, _, _, integrity = corpus
    fooled = {r["student_id"] for r in integrity if r["test_id"] and float(r["in_kernel_points"]) > 0}
    # (Silencing showtraceback or set_custom_exc does not always fool nbgrader itself: it can
    # record the error from the execute reply. Those cases score 0 either way.)
    for name in ("patch_allclose", "strip_asserts_transformer", "patch_checks", "detects_grading"):
        assert name.replace("_", "-") in fooled, f"{name} is not in the integrity report"
    assert all(float(r["trusted_points"]) == 0 for r in integrity if r["test_id"] and
               r["student_id"] not in ("honest",))


def test_feedback_shows_no_hidden_tests_and_stays_small(corpus):
    _, _, out, _ = corpus
    hidden = secrets_of(ASSIGNMENT, HIDDEN_TESTS_ONLY, root=out.parent / "solutions")
    assert hidden
    files = list((out / "feedback").rglob("*.html"))
    assert len(files) >= 20
    for path in files:
        text = path.read_text(errors="replace")
        assert not find_leaks(text, hidden, markers=HIDDEN_TEST_MARKERS), path
        assert len(text) < 5_000_000, f"{path} is {len(text)} bytes"


HONEST = ("honest", "restores_by_arithmetic", "reference_tests_deleted", "provided_cell_deleted",
          "duplicated_answer_cell", "duplicated_test_cell", "moved_cells", "retyped_answer_cell",
          "fresh_notebook", "answer_cell_deleted")


def test_honest_students_are_not_reported_as_tampering(corpus):
    """A mistake that fails in the notebook fails in the re-check too (the code changed its
    argument in place, the test sees it), and a repaired notebook is graded, not suspected."""
    _, _, _, integrity = corpus
    flagged = {r["student_id"] for r in integrity if r["test_id"]}
    assert not flagged & {name.replace("_", "-") for name in HONEST}, integrity


def test_repairs_are_reported_to_the_instructor(corpus):
    _, _, _, integrity = corpus
    notes = {}
    for r in integrity:
        if not r["test_id"]:
            notes.setdefault(r["student_id"], []).append(r["note"])
    expected = {"reference-tests-deleted": "restored: test_scale", "provided-cell-deleted": "restored: setup",
                "duplicated-answer-cell": "duplicated", "duplicated-test-cell": "counted once",
                "moved-cells": "order", "retyped-answer-cell": "without the course's metadata",
                "fresh-notebook": "without the course's metadata", "answer-cell-deleted": "unanswered: mean"}
    for student, fragment in expected.items():
        assert any(fragment in n for n in notes.get(student, [])), (student, notes.get(student))
    assert "honest" not in notes and "restores-by-arithmetic" not in notes


def test_the_feedback_tells_the_student_what_was_repaired(corpus):
    _, _, out, _ = corpus
    html = (out / "feedback" / "moved-cells" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "Grader&#39;s note" in html or "Grader's note" in html
    assert "put back in the exercise" in html
    honest = (out / "feedback" / "honest" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert "note.</strong> Before grading" not in honest


def test_feedback_names_each_test_says_each_message_once_and_wraps_long_lines(corpus):
    _, _, out, _ = corpus
    html = (out / "feedback" / "restores-by-arithmetic" / ASSIGNMENT / f"{ASSIGNMENT}.html").read_text()
    assert ">Test cell<" not in html
    for test_id in ("test_scale", "test_square", "test_mean", "test_probe"):
        assert f'<a href="#{test_id}"><code>{test_id}</code></a>' in html, test_id
    assert "failed, with the error shown above" in html
    assert "white-space: pre-wrap" in html


def test_feedback_that_would_show_hidden_tests_is_withheld_not_the_grade(corpus):
    """A student's own line that a hidden test also holds: the grade stands (full marks, checked
    above), the feedback file is not written, and the instructor reads why."""
    _, _, out, integrity = corpus
    student = "solution-line-is-a-hidden-test-line"
    assert not list((out / "feedback" / student).rglob("*.html"))
    notes = [r["note"] for r in integrity if r["student_id"] == student]
    assert any("withheld" in note for note in notes), notes
