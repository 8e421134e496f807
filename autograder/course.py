"""Where the course's assignments live and how nbgrader is configured for them."""

import os
import re
from pathlib import Path

from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
# COURSE_SOLUTIONS points the tools at another course's sources (the test suite's small
# fixture course for hostile submissions uses it).
SOLUTIONS = Path(os.environ.get("COURSE_SOLUTIONS", ROOT / "solutions")).resolve()

# nbgrader stores ids in paths and in its database: keep them to a safe alphabet.
SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")

COURSE_ID = "training-neural-networks"

# Python warnings on stderr would zero a correct test cell (nbgrader treats any stderr output
# in a test cell as a failure); they are dropped before grading.
HARMLESS_STDERR = r"\b\w*Warning: "


def assignments() -> list[str]:
    """Assignment ids, in course order: each ``solutions/<id>/<id>.ipynb``."""
    return sorted(p.parent.name for p in SOLUTIONS.glob("*/*.ipynb")
                  if p.stem == p.parent.name and ".ipynb_checkpoints" not in p.parts)


def notebooks(assignment: str) -> list[str]:
    """Notebook names (without ``.ipynb``) of an assignment."""
    return sorted(p.stem for p in (SOLUTIONS / assignment).glob("*.ipynb"))


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def is_test_cell(cell) -> bool:
    """A graded test cell: nbgrader's ``grade`` without ``solution`` (an autograded code cell)."""
    meta = nbgrader_meta(cell)
    return cell.get("cell_type") == "code" and bool(meta.get("grade")) and not meta.get("solution")


def nbgrader_config(course_root: Path, source_directory: Path, *, cell_timeout: int = 60) -> Config:
    """nbgrader settings for one course folder, set against its known pitfalls."""
    c = Config()
    c.CourseDirectory.root = str(course_root)
    c.CourseDirectory.source_directory = str(source_directory)
    c.CourseDirectory.db_url = f"sqlite:///{course_root / 'gradebook.db'}"
    c.CourseDirectory.course_id = COURSE_ID
    # Student stubs are the same in every exercise.
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.ClearSolutions.text_stub = "YOUR ANSWER HERE"
    # A student who deletes a test cell does not escape it: it is put back from the gradebook.
    c.OverwriteCells.add_missing_cells = True
    c.Execute.timeout = cell_timeout
    c.Execute.interrupt_on_timeout = True
    c.Execute.startup_timeout = 120
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = HARMLESS_STDERR
    c.LimitOutput.max_lines = 1000
    c.LimitOutput.max_traceback = 100
    c.Autograde.create_student = True
    return c
