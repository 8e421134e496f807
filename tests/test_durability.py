"""A batch killed with SIGKILL halfway and rerun gives every row once, with the grade it
deserves; regrading a finished batch is idempotent."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from autograder import sandbox
from conftest import ROOT
from hostile_corpus import ASSIGNMENT, FULL, released_course

STUDENTS = 6
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(sandbox.check() is not None, reason=f"no sandbox here: {sandbox.check()}")]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("durable")
    submissions, env, reference, untouched = released_course(root)
    for i in range(STUDENTS):
        folder = submissions / f"student{i}" / ASSIGNMENT
        folder.mkdir(parents=True)
        nbformat.write(reference if i % 2 else untouched, folder / f"{ASSIGNMENT}.ipynb")
    return submissions, env, root


def grade(submissions, out, env, **popen):
    command = [sys.executable, "-m", "autograder", "grade", str(submissions), "--out", str(out),
               "--jobs", "2", "--quiet"]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, **popen)


def test_kill_and_rerun_give_the_grades_deserved_once_each(course):
    """SIGKILL to the grader and everything it started, halfway through; the rerun grades what
    is left and writes every row once with the score it deserves (the odd students hand in the
    reference solution, the even ones the untouched notebook). Grading the finished batch again
    reuses the stored results and writes the same file."""
    submissions, env, root = course
    expected = "student_id,assignment_id,score,max_score,status\n" + "".join(
        f"student{i},{ASSIGNMENT},{FULL if i % 2 else 0:g},{FULL:g},graded\n" for i in range(STUDENTS))

    out = root / "killed"
    proc = grade(submissions, out, env)
    results = out / ".work" / "results"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and len(list(results.glob("*.json"))) < 2 and proc.poll() is None:
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    # The workers (each in a session of its own) and their kernels stop with the grader: none
    # goes on writing into the folders the rerun rebuilds.
    deadline = time.monotonic() + 2  # SIGKILL from the kernel: at once
    while _workers_of(out) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _workers_of(out), "grading workers outlived the killed grader"
    done_before = len(list(results.glob("*.json")))
    assert 2 <= done_before < STUDENTS, "the kill should land in the middle of the batch"
    assert not (out / "grades.csv").exists(), "grades.csv is written once the batch is complete"

    proc = grade(submissions, out, env)
    assert proc.wait(timeout=900) == 0, proc.stderr.read().decode()[-2000:]
    assert (out / "grades.csv").read_text().replace("\r\n", "\n") == expected

    # Idempotent: the finished batch again gives the same file, from stored results.
    start = time.monotonic()
    proc = grade(submissions, out, env)
    assert proc.wait(timeout=900) == 0
    assert (out / "grades.csv").read_text().replace("\r\n", "\n") == expected
    print(f"rerun from stored results: {time.monotonic() - start:.1f} s")


def _workers_of(out):
    """Processes whose command line names this batch's folder."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(out) in text:
            found.append(text)
    return found
