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
