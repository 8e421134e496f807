"""Regrading is idempotent, and a batch killed with SIGKILL halfway and rerun gives the same
grades.csv: no lost or duplicated rows."""

import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from autograder import sandbox
from autograder.course import read_source
from conftest import ROOT
from hostile_corpus import ASSIGNMENT, build

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox.check() is not None, reason=f"no sandbox here: {sandbox.check()}")]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("durable")
    course, submissions, _ = build(root, {"real_solutions": "", "course": "", "submissions": "", "out": "",
                                          "port": 0})
    env = dict(os.environ, COURSE_SOLUTIONS=str(course))
    subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(root / "release"),
                    "--book", str(root / "book")], cwd=ROOT, env=env, check=True, capture_output=True)
    blank = root / "release" / ASSIGNMENT / f"{ASSIGNMENT}.ipynb"
    for i in range(6):
        folder = submissions / f"student{i}" / ASSIGNMENT
        folder.mkdir(parents=True)
        notebook = read_source(ASSIGNMENT, root=course) if i % 2 else nbformat.read(blank, as_version=4)
        nbformat.write(notebook, folder / f"{ASSIGNMENT}.ipynb")
    return submissions, env, root


def grade(submissions, out, env, **popen):
    command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
               "--jobs", "2", "--quiet"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, **popen)


def test_rerun_and_kill_give_the_same_grades(course):
    submissions, env, root = course
    clean = root / "clean"
    proc = grade(submissions, clean, env)
    assert proc.wait(timeout=900) == 0, proc.stderr.read().decode()[-2000:]
    expected = (clean / "grades.csv").read_text()
    assert expected.count("\n") == 7  # header + 6 rows
    assert "student1,toy,6,6,graded" in expected and "student0,toy,0,6,graded" in expected

    # Idempotent: grading the same batch again gives the same file, from stored results.
    start = time.monotonic()
    proc = grade(submissions, clean, env)
    assert proc.wait(timeout=900) == 0
    assert (clean / "grades.csv").read_text() == expected
    rerun_seconds = time.monotonic() - start

    # Killed halfway (SIGKILL to the grader and everything it started), then run again.
    killed = root / "killed"
    proc = grade(submissions, killed, env)
    results = killed / ".work" / "results"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(results.glob("*.json"))) < 2:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(list(results.glob("*.json")))
    assert 2 <= done_before < 6, "the kill should land in the middle of the batch"
    assert not (killed / "grades.csv").exists() or (killed / "grades.csv").read_text() != ""
    proc = grade(submissions, killed, env)
    assert proc.wait(timeout=900) == 0, proc.stderr.read().decode()[-2000:]
    assert (killed / "grades.csv").read_text() == expected
    print(f"rerun from stored results: {rerun_seconds:.1f} s")
