"""Sources and what depends on them: the leak scan's explicit list of deliberate reveals, and
the fingerprint that decides whether a stored grade can be reused."""

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import nnkit.testing
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from autograder import grade
from autograder.course import write_source
from autograder.leaks import secrets_of
from autograder.result import Outcome, Status, TestResult, Verdict
from conftest import ROOT

SOLVED = "    return np.asarray(x, dtype=np.float64) * 2.0 + offset_that_is_distinctive"
EARLIER, LATER = "ch0_first", "ch1_second"


def _cell(kind, source, **meta):
    nbgrader = {"grade": False, "solution": False, "locked": True, "task": False, "schema_version": 3, **meta}
    return kind(source, metadata={"nbgrader": nbgrader})


def _source(title, cells):
    nb = new_notebook(metadata={"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                               "name": "python3"}})
    nb.cells = [_cell(new_markdown_cell, f"# {title}", grade_id="intro"),
                _cell(new_code_cell, "import numpy as np\noffset_that_is_distinctive = 0.0", grade_id="setup"),
                *cells]
    return nb


@pytest.fixture
def course(tmp_path):
    """Two chapters; the later one hands out the earlier one's solution as provided code."""
    root = tmp_path / "solutions"
    earlier = _source("Earlier", [
        _cell(new_code_cell, f"def double(x):\n    ### BEGIN SOLUTION\n{SOLVED}\n    ### END SOLUTION",
              grade_id="double", solution=True, locked=False),
        _cell(new_code_cell, "assert double(np.ones(2)).tolist() == [2.0, 2.0], 'double'",
              grade_id="test_double", grade=True, points=1)])
    later = _source("Later", [
        _cell(new_code_cell, f"def double(x):\n{SOLVED}", grade_id="given_double"),
        _cell(new_code_cell, "def triple(x):\n    ### BEGIN SOLUTION\n    return 3.0 * np.asarray(x)\n"
                             "    ### END SOLUTION", grade_id="triple", solution=True, locked=False),
        _cell(new_code_cell, "assert triple(np.ones(1)).tolist() == [3.0], 'triple'",
              grade_id="test_triple", grade=True, points=1)])
    for name, nb in ((EARLIER, earlier), (LATER, later)):
        (root / name).mkdir(parents=True)
        write_source(nb, root / name / f"{name}.py")
    return root


def _release(root, tmp_path):
    return subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(tmp_path / "release"),
                           "--book", str(tmp_path / "book")], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, COURSE_SOLUTIONS=str(root)), timeout=300)


def test_an_undeclared_reveal_is_refused_and_a_declared_one_reported(course, tmp_path):
    solved = " ".join(SOLVED.split())
    assert solved in secrets_of(EARLIER, root=course)
    refused = _release(course, tmp_path)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"private text of {EARLIER}" in refused.stderr and "reveals.toml" in refused.stderr, refused.stderr

    (course / "reveals.toml").write_text(f'[[reveal]]\nby = "{LATER}"\nof = "{EARLIER}"\nfunctions = ["double"]\n')
    assert solved not in secrets_of(EARLIER, root=course)
    released = _release(course, tmp_path)
    assert released.returncode == 0, released.stderr[-2000:]
    assert f"deliberate reveal: {LATER} hands out {EARLIER}'s solution of double" in released.stdout


@pytest.mark.parametrize("entry, problem", [
    (f'by = "{EARLIER}"\nof = "{LATER}"\nfunctions = ["triple"]', "comes after it"),
    (f'by = "{LATER}"\nof = "{EARLIER}"\nfunctions = ["halve"]', "has no solution of ['halve']"),
    (f'by = "ch9_missing"\nof = "{EARLIER}"\nfunctions = ["double"]', "needs by and of"),
])
def test_a_wrong_reveal_entry_is_a_clear_error(course, entry, problem):
    (course / "reveals.toml").write_text(f"[[reveal]]\n{entry}\n")
    with pytest.raises(ValueError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        secrets_of(EARLIER, root=course)


def _batch(tmp_path):
    (tmp_path / "submissions").mkdir()
    (tmp_path / "work" / "results").mkdir(parents=True)
    return SimpleNamespace(settings=grade.Settings(), submissions=tmp_path / "submissions",
                           work=tmp_path / "work", out=tmp_path / "out")


def test_the_fingerprint_covers_nnkit_and_package_versions():
    assert Path(nnkit.testing.__file__).resolve() in {p.resolve() for p in grade.GRADER_FILES}
    assert "nbgrader==" in grade.package_versions() and "torch==" in grade.package_versions()


def test_changing_a_tolerance_in_nnkit_regrades(tmp_path, monkeypatch):
    """A stored result is reused only while nnkit's checks are the same."""
    batch = _batch(tmp_path)
    assignment = grade.assignments()[0]
    testing = tmp_path / "nnkit" / "testing.py"
    testing.parent.mkdir()
    testing.write_text(open(nnkit.testing.__file__).read())
    real = os.path.realpath(nnkit.testing.__file__)
    monkeypatch.setattr(grade, "GRADER_FILES", [testing if os.path.realpath(p) == real else p
                                                for p in grade.GRADER_FILES])
    before = grade.fingerprint(batch, "ada", assignment)
    row = grade.Row("ada", assignment, 2.0, Status.GRADED,
                    tests=[TestResult("test_x", 2.0, Verdict(Outcome.PASSED))])
    grade._store(batch, row, before)
    assert grade._stored(batch, "ada", assignment, before).score == 2.0

    assert "rtol: float = 1e-6" in testing.read_text()
    testing.write_text(testing.read_text().replace("rtol: float = 1e-6", "rtol: float = 1e-3", 1))
    after = grade.fingerprint(batch, "ada", assignment)
    assert after != before
    assert grade._stored(batch, "ada", assignment, after) is None  # graded again


def test_a_new_package_version_regrades(tmp_path, monkeypatch):
    batch = _batch(tmp_path)
    assignment = grade.assignments()[0]
    before = grade.fingerprint(batch, "ada", assignment)
    real = grade.importlib.metadata.version
    monkeypatch.setattr(grade.importlib.metadata, "version",
                        lambda name: "0.0-other" if name == "numpy" else real(name))
    assert grade.fingerprint(batch, "ada", assignment) != before


def _grade(root, submissions, out, *extra):
    return subprocess.run([sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
                           "--quiet", "--unsafe-no-sandbox", *extra], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, COURSE_SOLUTIONS=str(root)), timeout=300)


def test_grades_csv_holds_the_assignments_handed_in_or_those_named(course, tmp_path):
    """A chapter nobody has handed in yet gets no rows of zeros, unless the instructor names it."""
    import csv

    submissions = tmp_path / "submissions"
    (submissions / "ann" / EARLIER).mkdir(parents=True)
    (submissions / "ann" / EARLIER / f"{EARLIER}.ipynb").write_text('{"cells": [')  # an error row: no kernel
    (submissions / "bob").mkdir()

    def rows(out):
        with open(out / "grades.csv", newline="") as f:
            return {(r["student_id"], r["assignment_id"]): r["status"].split(":")[0] for r in csv.DictReader(f)}

    proc = _grade(course, submissions, tmp_path / "present")
    assert proc.returncode == 0, proc.stderr
    assert rows(tmp_path / "present") == {("ann", EARLIER): "error", ("bob", EARLIER): "missing"}
    proc = _grade(course, submissions, tmp_path / "named", "--assignments", f"{EARLIER},{LATER}")
    assert proc.returncode == 0, proc.stderr
    assert rows(tmp_path / "named") == {("ann", EARLIER): "error", ("bob", EARLIER): "missing",
                                        ("ann", LATER): "missing", ("bob", LATER): "missing"}
    proc = _grade(course, submissions, tmp_path / "unknown", "--assignments", "ch9_nothing")
    assert proc.returncode == 2 and "no assignment ch9_nothing" in proc.stderr and EARLIER in proc.stderr
