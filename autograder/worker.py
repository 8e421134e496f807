"""Autograde one submission in its own nbgrader course folder (run as a subprocess).

Each (student, assignment) pair is graded in a folder of its own with a private copy of the
gradebook, so submissions cannot lock or overwrite each other's records, a crash or time-out
ends only this process, and batches can run in parallel.

1. nbgrader autograde runs the notebook (in the sandbox unless told otherwise) and records
   the in-kernel result of every test cell;
2. the trusted re-check runs every test cell again outside the student's process
   (``recheck.py``); its result is the one that counts and is written into the gradebook;
3. nbgrader generate_feedback renders the feedback, without hidden tests.

    python -m autograder.worker COURSE_ROOT ASSIGNMENT STUDENT [--uid N | --no-sandbox]
"""

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

GRADER_PID = "TNN_GRADER_PID"


def _stop_with_the_grader() -> None:
    """A worker runs in a session of its own (a time-out ends its whole process group, kernels
    included), so a grader killed with ``kill -9`` would leave it running, writing into the
    folder the next run of the batch rebuilds. The kernel asks Linux to end it with its parent;
    its sandboxed kernels end with it (bubblewrap's ``--die-with-parent``)."""
    parent = os.environ.get(GRADER_PID)
    if not parent or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != int(parent):  # the grader died before the request was made
        os._exit(1)


if __name__ == "__main__":
    # Before the imports below, which take a second or more on a busy machine: a grader killed
    # in the meantime must not leave this process running.
    _stop_with_the_grader()

import nbformat
from jupyter_client.manager import KernelManager
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.api import Gradebook
from nbgrader.apps import NbGraderAPI
from nbgrader.converters import Autograde
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import Execute, GetGrades

from .course import nbgrader_config
from .feedback import SanitizeFeedback
from .recheck import exercise_api, recheck
from .result import RESULT_FILE, Outcome, Step, SubmissionResult, TestResult, Verdict
from .sandbox import SandboxedBlockingKernelManager, SandboxedKernelManager


class SandboxedExecute(Execute):
    """nbgrader's Execute, with kernels started in the sandbox."""

    def __init__(self, *args, **kwargs):
        kwargs["kernel_manager_class"] = SandboxedKernelManager
        super().__init__(*args, **kwargs)


def _give_to(path: Path, uid: int) -> None:
    """The sandboxed kernel runs as ``uid`` and may write only in its scratch copy."""
    for root, dirs, files in os.walk(path):
        os.chown(root, uid, uid)
        for name in files:
            os.chown(os.path.join(root, name), uid, uid)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("assignment")
    parser.add_argument("student")
    parser.add_argument("--cell-timeout", type=int, default=60)
    parser.add_argument("--uid", type=int, default=61000)
    parser.add_argument("--no-sandbox", action="store_true")
    args = parser.parse_args(argv)
    root, assignment, student = args.root, args.assignment, args.student
    sandboxed = not args.no_sandbox

    runtime = Path(tempfile.mkdtemp(prefix="tnn-"))  # short: Unix socket paths are limited to 107 bytes
    config = nbgrader_config(root, root / "source", cell_timeout=args.cell_timeout)
    config.GenerateFeedback.preprocessors = [GetGrades, SanitizeFeedback, CSSHTMLHeaderPreprocessor]
    config.SanitizeFeedback.result_path = str(root / RESULT_FILE)
    submitted = root / "submitted" / student / assignment
    if sandboxed:
        default = Autograde.class_traits()["autograde_preprocessors"].make_dynamic_default()
        config.Autograde.autograde_preprocessors = [SandboxedExecute if p is Execute else p for p in default]
        config.SandboxedKernelManager.runtime_dir = str(runtime / "autograde")
        config.SandboxedKernelManager.sandbox_uid = args.uid
        _give_to(submitted, args.uid)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    result = SubmissionResult()
    result.steps.append(_step("autograde", api.autograde(assignment, student, force=True, create=True)))
    # nbgrader gives up on a whole notebook when one cell times out or the kernel dies; its
    # sanitized copy (test cells restored from the gradebook) is still written, and the
    # re-check, which survives both, grades it.
    sanitized = root / "autograded" / student / assignment
    if result.steps[0].success or any(sanitized.glob("*.ipynb")):
        try:
            result.tests = trusted_recheck(root, assignment, student, config, runtime, args, sandboxed)
            result.steps.append(Step("recheck", True))
        except Exception as exc:
            result.steps.append(Step("recheck", False, f"{type(exc).__name__}: {exc}"))
    result.save(root / RESULT_FILE)  # the feedback shows the re-check's verdicts
    if result.step("recheck") and result.step("recheck").success:
        result.steps.append(_step("feedback", api.generate_feedback(assignment, student, force=True)))
        result.save(root / RESULT_FILE)
    shutil.rmtree(runtime, ignore_errors=True)
    return 0 if all(step.success for step in result.steps) else 1


def _step(name: str, outcome: dict) -> Step:
    """An nbgrader API call's outcome, with the line of its log that says what went wrong."""
    if outcome["success"]:
        return Step(name, True)
    lines = [l.strip() for l in (outcome.get("log", "") + "\n" + (outcome.get("error") or "")).splitlines()]
    for marker in ("CellTimeoutError", "DeadKernelError", "Error:", "ERROR"):
        found = [l for l in lines if marker in l and "Please see the" not in l]
        if found:
            return Step(name, False, found[-1][:200])
    return Step(name, False, next((l for l in reversed(lines) if l), "unknown error")[:200])


def trusted_recheck(root, assignment, student, config, runtime, args, sandboxed) -> list[TestResult]:
    """Run the tests again outside the student's process and make the gradebook agree."""
    autograded = root / "autograded" / student / assignment
    verdicts = {}
    # The source notebooks nbgrader graded with (generated into the course folder by grade.py):
    # the re-check asks for the same exercise, whatever happens to solutions/ meanwhile.
    for source in sorted((root / "source" / assignment).glob("*.ipynb")):
        name = source.stem
        notebook = nbformat.read(autograded / f"{name}.ipynb", as_version=4)
        scratch = root / "recheck" / name
        if scratch.exists():
            shutil.rmtree(scratch)
        shutil.copytree(root / "submitted" / student / assignment, scratch)
        if sandboxed:
            os.chmod(scratch, 0o755)
            _give_to(scratch, args.uid)

            def factory():
                return SandboxedBlockingKernelManager(kernel_name="python3", config=config,
                                                      runtime_dir=str(runtime / f"recheck-{name}"),
                                                      # a uid apart from nbgrader's run: what
                                                      # that run left behind cannot starve it
                                                      sandbox_uid=args.uid + 1000)
        else:
            def factory():
                return KernelManager(kernel_name="python3")
        verdicts.update(recheck(notebook, exercise_api(nbformat.read(source, as_version=4)), scratch, factory,
                                cell_timeout=args.cell_timeout))
    tests = []
    db = f"sqlite:///{root / 'gradebook.db'}"
    with Gradebook(db, config.CourseDirectory.course_id) as gb:
        submission = gb.find_submission(assignment, student)
        for nb in submission.notebooks:
            for grade in nb.grades:
                # auto_score None: nbgrader's own run never got to this cell
                in_kernel = float(grade.score or 0.0) if grade.auto_score is not None else None
                verdict = verdicts.get(grade.name, Verdict(Outcome.FAILED, "not re-checked"))
                test = TestResult(grade.name, float(grade.max_score), verdict, in_kernel)
                grade.auto_score = test.points
                grade.manual_score = None
                grade.needs_manual_grade = False
                tests.append(test)
        gb.db.commit()
    return tests


if __name__ == "__main__":
    sys.exit(main())
