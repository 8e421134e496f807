"""Grade a class: every student's submission of every assignment handed in, one row each.

A broken submission (corrupt JSON, wrong file name, a kernel that dies or hangs) is reported
in its own row; the rest of the class is still graded; a damaged notebook (cells deleted,
moved, duplicated, retyped) is first put back in the exercise's shape (``repair.py``). The
batch is written to ``OUT/grades.csv`` (one row per student and assignment), ``OUT/tests.csv``
(one row per test cell), ``OUT/integrity.csv`` (tests that passed in the student's kernel and
failed the trusted re-check, and notes) and ``OUT/feedback/<student>/<assignment>/<notebook>.html``;
with them ``OUT/gradebook.db`` (an nbgrader gradebook of the batch, ``gradebook.py``),
``OUT/report.html`` and ``OUT/gradebook-wide.csv`` (``report.py``) and ``OUT/rows.json``.
A batch can be split over machines (``shard``) and put back together (``merge.py``).
"""

import csv
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook
from tqdm import tqdm

from . import collect, sandbox
from .course import COURSE_ID, ROOT, SAFE_ID, assignment_files, assignments, notebooks
from .feedback import finish_html
from .leaks import HIDDEN_TEST_MARKERS, HIDDEN_TESTS_ONLY, find_leaks, secrets_of
from .release import generate
from .repair import Unrecognizable, rebuild
from .result import RESULT_FILE, Outcome, Status, SubmissionResult, TestResult, Verdict
from .worker import GRADER_PID

GRADES_HEADER = ("student_id", "assignment_id", "score", "max_score", "status")
TESTS_HEADER = ("student_id", "assignment_id", "test_id", "points", "max_points", "reason")
INTEGRITY_HEADER = ("student_id", "assignment_id", "test_id", "in_kernel_points", "trusted_points",
                    "note")


RECHECK_GAVE_MORE = "passed in the trusted re-check; the notebook's own run of this test failed"


def _recheck_gave_more(test: TestResult) -> bool:
    return test.in_kernel_points is not None and test.in_kernel_points < test.points


@dataclass
class Row:
    student_id: str
    assignment_id: str
    max_score: float
    status: Status
    reason: str = ""                                                   # why, for an error
    tests: list[TestResult] = field(default_factory=list, repr=False)
    notes: list[str] = field(default_factory=list, repr=False)         # for the integrity report
    seconds: float = 0.0                                               # time spent grading it

    @property
    def score(self) -> float:
        return sum(t.points for t in self.tests)

    @property
    def status_text(self) -> str:
        return f"{self.status.value}: {self.reason}" if self.reason else self.status.value

    def csv_fields(self):
        return (self.student_id, self.assignment_id, _num(self.score), _num(self.max_score), self.status_text)

    def test_rows(self):
        return [(self.student_id, self.assignment_id, t.test_id, _num(t.points), _num(t.max_points),
                 _one_line(t.verdict.reason or (RECHECK_GAVE_MORE if _recheck_gave_more(t) else "")))
                for t in self.tests]

    def integrity_rows(self):
        """Tests that passed in the student's kernel and failed the trusted re-check (what
        tampering with the kernel looks like), then notes. The other way round — the re-check
        passing a test the notebook's own run failed — is not the student's doing: tests.csv
        says so in the test's row."""
        rows = [(self.student_id, self.assignment_id, t.test_id, _num(t.in_kernel_points), _num(t.points),
                 _one_line(t.verdict.reason or t.verdict.outcome.value))
                for t in self.tests if t.in_kernel_points is not None and t.in_kernel_points > t.points]
        return rows + [(self.student_id, self.assignment_id, "", "", "", note) for note in self.notes]


    def to_json(self) -> dict:
        return {"student_id": self.student_id, "assignment_id": self.assignment_id,
                "max_score": self.max_score, "status": self.status.value, "reason": self.reason,
                "result": asdict(SubmissionResult(tests=self.tests)), "notes": self.notes,
                "seconds": self.seconds}

    @classmethod
    def from_json(cls, data: dict) -> "Row":
        tests = SubmissionResult.from_dict(data["result"]).tests
        return cls(data["student_id"], data["assignment_id"], data["max_score"], Status(data["status"]),
                   data["reason"], tests, data["notes"], data.get("seconds", 0.0))


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _num(x: float) -> str:
    return f"{x:g}"


@dataclass
class Settings:
    cell_timeout: int = 60
    notebook_timeout: int = 900
    sandbox: bool = True


class Batch:
    """One grading run: a template gradebook shared read-only, a folder per submission."""

    def __init__(self, submissions: Path, out: Path, settings: Settings, assignment_ids: list[str]):
        self.submissions = submissions
        self.out = out
        self.settings = settings
        self.work = out / ".work"
        self.assignments = assignment_ids
        self.max_scores: dict[str, float] = {}
        self.tests: dict[str, list[tuple[str, float]]] = {}
        # A student's feedback may show their own code, never the hidden tests.
        self.hidden = {a: secrets_of(a, HIDDEN_TESTS_ONLY) for a in self.assignments}
        self.uids: queue.Queue = queue.Queue()  # free sandbox uids, one per job slot

    # -- set-up --------------------------------------------------------------------------
    def prepare(self) -> None:
        # Finished results survive (a rerun reuses them); everything else is rebuilt.
        for stale in ("template", "courses"):
            if (self.work / stale).exists():
                shutil.rmtree(self.work / stale)
        (self.work / "results").mkdir(parents=True, exist_ok=True)
        template = self.work / "template"
        generate(template, self.assignments)
        with Gradebook(f"sqlite:///{template / 'gradebook.db'}",
                       COURSE_ID) as gb:
            for a in self.assignments:
                assignment = gb.find_assignment(a)
                self.max_scores[a] = float(assignment.max_score)
                self.tests[a] = [(cell.name, float(cell.max_score))
                                 for nb in assignment.notebooks for cell in nb.grade_cells]

    def students(self) -> list[str]:
        return sorted(p.name for p in self.submissions.iterdir()
                      if p.is_dir() and not p.name.startswith("."))

    # -- one submission ------------------------------------------------------------------
    def grade_one(self, student: str, assignment: str) -> Row:
        def row(status: Status, reason: str = "", tests=None) -> Row:
            reason = " ".join(reason.split())  # one line per row in the CSV
            if tests is None:  # nothing ran: every test is reported with the row's reason
                tests = [TestResult(t, m, Verdict(Outcome.NOT_RUN, reason or status.value))
                         for t, m in self.tests[assignment]]
            return Row(student, assignment, self.max_scores[assignment], status, reason, tests)

        def error(reason: str) -> Row:
            return row(Status.ERROR, reason)

        if not SAFE_ID.match(student):
            return error("student id must be letters, digits, '.', '_' or '-'")
        folder = self.submissions / student / assignment
        if not folder.is_dir():
            return row(Status.MISSING)
        expected = notebooks(assignment)
        found = sorted(p.name for p in folder.glob("*.ipynb"))
        absent = [f"{n}.ipynb" for n in expected if f"{n}.ipynb" not in found]
        if absent and not found:
            return row(Status.MISSING)
        renamed = {}
        if absent:
            if len(expected) == 1 and len(found) == 1:
                # One notebook expected, one handed in under another name: it is that notebook.
                renamed = {found[0]: absent[0]}
            else:
                return error(f"expected {', '.join(absent)}, found {', '.join(found)}")
        for name in found:
            problem = _unreadable(folder / name)
            if problem:
                return error(f"{name} is not a valid notebook ({problem})")

        course = self.work / "courses" / f"{student}--{assignment}"
        try:
            repairs = self._set_up_course(course, folder, student, assignment, renamed)
        except Unrecognizable as exc:
            return error(str(exc))
        try:
            result, problem = self._run_worker(course, student, assignment)
        except subprocess.TimeoutExpired:
            return error(f"grading stopped after {self.settings.notebook_timeout} s "
                         "(whole-notebook time limit)")
        if problem:
            return error(problem)
        withheld = self._publish_feedback(course, student, assignment)
        stopped = [t.test_id for t in result.tests if t.verdict.outcome is Outcome.NOT_RUN]
        graded = (error(f"the notebook stopped before {len(stopped)} test cell(s) ran "
                        f"({', '.join(stopped[:3])}{', ...' if len(stopped) > 3 else ''})")
                  if stopped else row(Status.GRADED))
        graded.tests = result.tests
        graded.notes = [f"notebook handed in as {old!r}" for old in renamed] + repairs + withheld
        autograde = result.step("autograde")
        if autograde and not autograde.success:
            # The re-check graded the notebook; the instructor still hears why nbgrader stopped.
            graded.notes.append(f"nbgrader's in-kernel run stopped: {autograde.error}")
        return graded

    def _set_up_course(self, course: Path, folder: Path, student: str, assignment: str,
                       renamed: dict[str, str]) -> list[str]:
        """The submission's own course folder; returns what had to be repaired in its notebooks."""
        if course.exists():
            shutil.rmtree(course)
        # The batch's template already generated the assignment's source folder: copied, not
        # converted again for every submission.
        shutil.copytree(self.work / "template" / "source" / assignment, course / "source" / assignment)
        shutil.copyfile(self.work / "template" / "gradebook.db", course / "gradebook.db")
        submitted = course / "submitted" / student / assignment
        submitted.mkdir(parents=True)
        for item in folder.iterdir():
            if item.is_file() and not item.is_symlink():
                shutil.copyfile(item, submitted / renamed.get(item.name, item.name))
        notes = []
        for name in notebooks(assignment):
            path = submitted / f"{name}.ipynb"
            released = nbformat.read(self.work / "template" / "release" / assignment / f"{name}.ipynb",
                                     as_version=4)
            try:
                nb, repairs = rebuild(nbformat.read(path, as_version=4), released)
            except Unrecognizable as exc:
                raise Unrecognizable(f"{name}.ipynb: {exc}") from None
            if repairs:  # an intact notebook is graded byte for byte as handed in
                # The student reads in the feedback what was done to the notebook before grading.
                nb.cells.insert(0, nbformat.v4.new_markdown_cell(
                    "**Grader's note.** Before grading, your notebook was put back into the "
                    "exercise's shape:\n" + "".join(f"\n* {r}" for r in repairs)))
                nbformat.write(nb, path)
                notes += [f"{name}.ipynb: {r}" for r in repairs]
        return notes

    def _run_worker(self, course: Path, student: str, assignment: str) -> str | None:
        """Autograde in a subprocess; returns a reason when it did not complete."""
        command = [sys.executable, "-m", "autograder.worker", str(course), assignment, student,
                   "--cell-timeout", str(self.settings.cell_timeout)]
        uid = self.uids.get()  # one uid per running submission: limits and signals stay apart
        command += ["--uid", str(uid)] if self.settings.sandbox else ["--no-sandbox"]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p), **{GRADER_PID: str(os.getpid())})
        with subprocess.Popen(command, cwd=course, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
            try:
                _, stderr = proc.communicate(timeout=self.settings.notebook_timeout)
            except subprocess.TimeoutExpired:
                # The kernel is a grandchild: end the whole process group.
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise
            finally:
                self.uids.put(uid)
        report = course / RESULT_FILE
        if not report.exists():
            tail = (stderr or "").strip().splitlines()[-1:] or ["no output"]
            return None, f"the grader stopped unexpectedly ({tail[0][:200]})"
        result = SubmissionResult.load(report)
        recheck = result.step("recheck")
        if recheck is None or not recheck.success:
            failed = recheck or result.step("autograde")
            what = "recheck" if recheck else "nbgrader autograde"
            return result, f"{what} failed ({failed.error if failed else 'no result'})"
        feedback = result.step("feedback")
        if feedback is not None and not feedback.success:
            return result, f"nbgrader feedback failed ({feedback.error})"
        return result, None

    def _publish_feedback(self, course: Path, student: str, assignment: str) -> list[str]:
        """Writes the feedback files; returns a note for each one withheld."""
        notes = []
        for html in (course / "feedback" / student / assignment).glob("*.html"):
            text = finish_html(html.read_text(errors="replace"))
            leaks = find_leaks(text, self.hidden[assignment], markers=HIDDEN_TEST_MARKERS)
            if leaks:
                # Never publish private text, even if the sanitizer missed a path. The usual cause
                # is harmless (a line of the student's own code that a hidden test also holds):
                # the grade stands, and the instructor decides what to return.
                notes.append(f"feedback {html.name} withheld: it would show hidden-test text "
                             f"({'; '.join(leaks[:2])[:120]})")
                continue
            target = self.out / "feedback" / student / assignment / html.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        return notes


def _unreadable(path: Path) -> str | None:
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
    except Exception as exc:  # any reason a notebook cannot be read is the student's row, not a crash
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
    return None


def _remove_stale_feedback(feedback: Path, tasks: set) -> None:
    """Feedback of students or assignments no longer in the batch does not linger."""
    if not feedback.is_dir():
        return
    for student_dir in feedback.iterdir():
        for assignment_dir in (student_dir.iterdir() if student_dir.is_dir() else []):
            if (student_dir.name, assignment_dir.name) not in tasks:
                shutil.rmtree(assignment_dir)


def _write_csv(path: Path, header, rows) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    os.replace(tmp, path)  # a reader never sees half a file


def _write_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class SandboxUnavailable(RuntimeError):
    pass


class UnknownAssignment(ValueError):
    pass


def handed_in(submissions: Path) -> list[str]:
    """The course's assignments that at least one student's folder holds, in course order."""
    present = {p.name for student in submissions.iterdir() if student.is_dir() for p in student.iterdir()
               if p.is_dir()}
    return [a for a in assignments() if a in present]


def grade(submissions: Path, out: Path, *, jobs: int = 1, settings: Settings | None = None,
          progress: bool = True, assignment_ids: list[str] | None = None,
          shard: tuple[int, int] | None = None) -> list[Row]:
    """Grade every student for ``assignment_ids`` (default: the assignments anyone handed in,
    so that chapters not yet released get no rows of zeros).

    ``shard=(i, n)`` grades only the i-th of n interleaved slices of the (student, assignment)
    pairs, in their sorted order: n machines given the same submissions grade the batch once
    between them, and ``merge`` puts their outputs together."""
    settings = settings or Settings()
    unknown = [a for a in assignment_ids or [] if a not in assignments()]
    if unknown:
        raise UnknownAssignment(f"no assignment {', '.join(unknown)} in this course "
                                f"(it has {', '.join(assignments())})")
    if shard is not None and not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard {shard[0]}/{shard[1]}: expected i/n with 0 <= i < n")
    if not submissions.exists():
        raise FileNotFoundError(f"submissions not found: {submissions}")
    if settings.sandbox:
        problem = sandbox.check()
        if problem:
            raise SandboxUnavailable(
                f"cannot sandbox student code here: {problem}. Fix that, or grade anyway with "
                "--unsafe-no-sandbox (student code then runs with the grader's rights).")
    out.mkdir(parents=True, exist_ok=True)
    submissions, skipped = collect.normalize(submissions, out / ".work")
    for name in skipped:
        print(f"skipped {name}: not <student>_<notebook>.ipynb for a notebook of this course",
              file=sys.stderr)
    chosen = assignment_ids or handed_in(submissions)
    if not chosen:
        raise UnknownAssignment(f"no submission of any assignment of this course in {submissions} "
                                f"(folders named {', '.join(assignments())})")
    batch = Batch(submissions, out, settings, [a for a in assignments() if a in chosen])
    for slot in range(max(1, jobs)):
        batch.uids.put(61000 + slot)
    batch.prepare()
    every_task = [(s, a) for s in batch.students() for a in batch.assignments]
    index, count = shard or (0, 1)
    tasks = every_task[index::count]
    _remove_stale_feedback(out / "feedback", set(tasks))
    rows: list[Row] = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool, \
            tqdm(total=len(tasks), desc="grading", unit="notebook", disable=not progress,
                 file=sys.stderr) as bar:
        futures = [pool.submit(_safely, batch, s, a) for s, a in tasks]
        for future in futures:
            row = future.result()
            rows.append(row)
            bar.update()
            bar.write(f"{row.student_id}/{row.assignment_id}: {_num(row.score)}/"
                      f"{_num(row.max_score)} {row.status_text}")
    header = {"assignments": batch.assignments, "students": batch.students(), "shard": [index, count]}
    write_outputs(out, header, rows, batch.work / "template" / "gradebook.db")
    return rows


ROWS_FILE = "rows.json"  # every row of the run, whole: what `merge` and `report` read back


def write_outputs(out: Path, header: dict, rows: list[Row], template_gradebook: Path) -> None:
    """Everything a run leaves in ``out`` besides the feedback: the CSV files, the rows as JSON,
    the nbgrader gradebook of the batch, the class report and the one-row-per-student CSV."""
    from .gradebook import write_gradebook
    from .report import write_report

    rows = sorted(rows, key=lambda r: (r.student_id, r.assignment_id))
    _write_csv(out / "grades.csv", GRADES_HEADER, [r.csv_fields() for r in rows])
    _write_csv(out / "tests.csv", TESTS_HEADER, [t for r in rows for t in r.test_rows()])
    _write_csv(out / "integrity.csv", INTEGRITY_HEADER, [i for r in rows for i in r.integrity_rows()])
    _write_text(out / ROWS_FILE, json.dumps({**header, "rows": [r.to_json() for r in rows]}, indent=1))
    write_gradebook(out / "gradebook.db", template_gradebook, rows)
    write_report(out, header["assignments"], rows)


def read_rows(out: Path) -> tuple[dict, list[Row]]:
    """The header and rows a run wrote into ``out``."""
    data = json.loads((out / ROWS_FILE).read_text())
    return {k: v for k, v in data.items() if k != "rows"}, [Row.from_json(r) for r in data["rows"]]


# Everything besides the submission and the assignment that can change a grade: the grader's
# code, the helper package every test calls (its tolerances), and the packages that run or
# grade the notebooks.
NNKIT = Path(importlib.util.find_spec("nnkit").submodule_search_locations[0])  # found, not imported
GRADER_FILES = sorted(Path(__file__).parent.glob("*.py")) + sorted(NNKIT.glob("*.py"))
GRADING_PACKAGES = ("nbgrader", "nbclient", "nbconvert", "nbformat", "ipykernel", "jupyter_client",
                    "jupytext", "numpy", "scipy", "torch", "scikit-learn", "mnist1d")


def package_versions() -> str:
    versions = []
    for name in GRADING_PACKAGES:
        try:
            versions.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{name} absent")
    return " ".join(versions)


def fingerprint(batch: Batch, student: str, assignment: str) -> str:
    """What a result depends on: the submission's files, the assignment's sources, the grader's
    code and settings, nnkit and the grading packages' versions. Equal fingerprints, equal
    grades: a rerun reuses the stored result."""
    digest = hashlib.sha256()
    settings = batch.settings
    digest.update(repr((settings.cell_timeout, settings.notebook_timeout, settings.sandbox)).encode())
    digest.update(package_versions().encode())
    for path in GRADER_FILES + assignment_files(assignment):
        digest.update(str(path.relative_to(path.parent.parent)).encode() + b"\0" + path.read_bytes())
    folder = batch.submissions / student / assignment
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink():
                digest.update(b"submission:" + path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _stored(batch: Batch, student: str, assignment: str, key: str) -> Row | None:
    path = batch.work / "results" / f"{student}--{assignment}.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if data.get("fingerprint") != key:
        return None
    feedback = batch.out / "feedback" / student / assignment
    if data.get("feedback") and not all((feedback / name).exists() for name in data["feedback"]):
        return None
    return Row.from_json(data["row"])


def _store(batch: Batch, row: Row, key: str) -> None:
    feedback = batch.out / "feedback" / row.student_id / row.assignment_id
    data = {"fingerprint": key, "row": row.to_json(),
            "feedback": sorted(p.name for p in feedback.glob("*.html"))}
    path = batch.work / "results" / f"{row.student_id}--{row.assignment_id}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)  # a kill between two submissions never leaves half a result


def _safely(batch: Batch, student: str, assignment: str) -> Row:
    """A stored result with the same fingerprint is reused; otherwise the submission is graded.
    A failure of the grader on one submission becomes that row's status, never the batch's."""
    try:
        key = fingerprint(batch, student, assignment)
        row = _stored(batch, student, assignment, key)
        if row is None:
            shutil.rmtree(batch.out / "feedback" / student / assignment, ignore_errors=True)
            started = time.monotonic()
            row = batch.grade_one(student, assignment)
            row.seconds = round(time.monotonic() - started, 2)
            _store(batch, row, key)
        return row
    except Exception as exc:
        return Row(student, assignment, batch.max_scores.get(assignment, 0.0), Status.ERROR,
                   f"grader failed on this submission ({type(exc).__name__}: "
                   f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
