"""What grading one submission produced, as one typed record.

The worker (``worker.py``) writes it to ``result.json`` in the submission's course folder;
``grade.py`` and the feedback preprocessor read it back with :meth:`SubmissionResult.load`.
The rule that turns a test's verdict into points lives here and nowhere else.
"""

import json
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path

RESULT_FILE = "result.json"  # in the submission's course folder


class Status(str, Enum):
    """A row of grades.csv."""
    GRADED = "graded"
    MISSING = "missing"
    ERROR = "error"


class Outcome(str, Enum):
    """A test cell under the trusted re-check."""
    PASSED = "passed"
    FAILED = "failed"    # it raised: an assertion, or the student's code failed when called
    NOT_RUN = "not run"  # the student's kernel was gone before the test's turn


@dataclass
class Verdict:
    outcome: Outcome
    reason: str = ""  # why it failed or did not run, for the student and the instructor

    @classmethod
    def passed(cls) -> "Verdict":
        return cls(Outcome.PASSED)


@dataclass
class TestResult:
    __test__ = False  # a record, not a pytest test class
    test_id: str
    max_points: float
    verdict: Verdict
    in_kernel_points: float | None = None  # nbgrader's own run (None: it never got there)

    @property
    def points(self) -> float:
        """All or nothing: a test earns its points only if it ran to the end under the re-check."""
        return self.max_points if self.verdict.outcome is Outcome.PASSED else 0.0


@dataclass
class Step:
    name: str        # "autograde", "recheck" or "feedback"
    success: bool
    error: str = ""  # the line that says what went wrong


@dataclass
class SubmissionResult:
    steps: list[Step] = field(default_factory=list)
    tests: list[TestResult] = field(default_factory=list)

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def verdicts(self) -> dict[str, Verdict]:
        return {t.test_id: t.verdict for t in self.tests}

    def save(self, path: Path) -> None:
        tmp = Path(path).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)  # a reader never sees half a record

    @classmethod
    def load(cls, path: Path) -> "SubmissionResult":
        return cls.from_dict(json.loads(Path(path).read_text()))

    @classmethod
    def from_dict(cls, data: dict) -> "SubmissionResult":
        return cls(steps=[Step(**s) for s in data["steps"]],
                   tests=[TestResult(t["test_id"], t["max_points"],
                                     Verdict(Outcome(t["verdict"]["outcome"]), t["verdict"]["reason"]),
                                     t["in_kernel_points"]) for t in data["tests"]])
