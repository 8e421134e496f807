"""Where the course's assignments live, how their sources are read, and how nbgrader is
configured for them.

Each exercise source is a text notebook, ``solutions/<id>/<id>.py`` in jupytext's percent
format (why: ``solutions/README.md``). Everything that needs a source — release, grading, the
leak scans, the tests — reads it through :func:`read_source`; the ``.ipynb`` files nbgrader
reads are generated from it by :func:`write_source_notebooks` and never committed.
"""

import os
import re
from pathlib import Path

import jupytext
import nbformat
from nbgrader.preprocessors import ClearHiddenTests, ClearSolutions
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


SOURCE_FORMAT = "py:percent"
SOURCE_METADATA = "kernelspec,language_info,-jupytext.text_representation.jupytext_version"


def _nbgrader_default(cls, trait: str) -> str:
    return cls.class_traits()[trait].default_value


# The delimiters of the private regions are nbgrader's own (its ClearSolutions and
# ClearHiddenTests settings): the leak scans, the feedback filter and the tests take them from
# here, so they cannot drift from what nbgrader removes.
BEGIN_SOLUTION = _nbgrader_default(ClearSolutions, "begin_solution_delimeter")
END_SOLUTION = _nbgrader_default(ClearSolutions, "end_solution_delimeter")
BEGIN_HIDDEN_TESTS = _nbgrader_default(ClearHiddenTests, "begin_test_delimeter")
END_HIDDEN_TESTS = _nbgrader_default(ClearHiddenTests, "end_test_delimeter")
PRIVATE_REGIONS = {BEGIN_SOLUTION: END_SOLUTION, BEGIN_HIDDEN_TESTS: END_HIDDEN_TESTS}


def _solutions(root: Path | None) -> Path:
    return Path(root) if root is not None else SOLUTIONS


def is_source(path: Path) -> bool:
    """A text notebook source: a ``.py`` file that starts with jupytext's header. (An
    assignment may also ship plain Python modules; those are not notebooks.)"""
    if path.suffix != ".py" or not path.is_file():
        return False
    head = path.read_text(errors="replace")[:600]
    return head.startswith("# ---\n") and "format_name: percent" in head


def assignments(root: Path | None = None) -> list[str]:
    """Assignment ids, in course order: each ``solutions/<id>/<id>.py``."""
    return sorted(p.parent.name for p in _solutions(root).glob("*/*.py")
                  if p.stem == p.parent.name and is_source(p))


def notebooks(assignment: str, root: Path | None = None) -> list[str]:
    """Notebook names of an assignment (the stems of its text sources)."""
    return sorted(p.stem for p in (_solutions(root) / assignment).glob("*.py") if is_source(p))


def assignment_files(assignment: str, root: Path | None = None) -> list[Path]:
    """Everything an assignment consists of: its text sources and the files they use. An
    ``.ipynb`` there is never a source (a Jupyter pairing or a generated copy)."""
    folder = _solutions(root) / assignment
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix != ".ipynb")


def read_source(assignment: str, notebook: str | None = None, root: Path | None = None):
    """The source notebook ``notebook`` (default: the one named like the assignment), as an
    nbformat v4 notebook with every nbgrader cell's metadata. Cell ids are derived from the
    nbgrader ``grade_id`` (ids are not kept in the text), so that every generation of the same
    source gives the same notebook."""
    path = _solutions(root) / assignment / f"{notebook or assignment}.py"
    nb = jupytext.read(path, fmt=SOURCE_FORMAT)
    nb.metadata.pop("jupytext", None)
    nb.nbformat, nb.nbformat_minor = 4, 5
    for index, cell in enumerate(nb.cells):
        grade_id = nbgrader_meta(cell).get("grade_id")
        cell.id = grade_id.replace("_", "-")[:64] if grade_id else f"cell-{index}"
    return nb


def write_source(nb, path: Path) -> None:
    """Write a notebook as a text source (the converse of :func:`read_source`)."""
    nb = nbformat.from_dict(nb)
    # The header keeps what nbgrader and the book use; no tool version, so that rewriting a
    # source with another jupytext does not change it.
    nb.metadata["jupytext"] = {"notebook_metadata_filter": SOURCE_METADATA}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    jupytext.write(nb, path, fmt=SOURCE_FORMAT)


def write_source_notebooks(dest: Path, assignment_ids: list[str] | None = None,
                           root: Path | None = None) -> Path:
    """Lay out ``dest/<assignment>/`` as nbgrader's source folder: each text source as the
    ``.ipynb`` nbgrader reads, and the assignment's other files beside it."""
    for assignment in assignment_ids or assignments(root):
        folder = Path(dest) / assignment
        folder.mkdir(parents=True, exist_ok=True)
        for path in assignment_files(assignment, root):
            if is_source(path):
                nbformat.write(read_source(assignment, path.stem, root), folder / f"{path.stem}.ipynb")
            else:
                (folder / path.name).write_bytes(path.read_bytes())
    return Path(dest)


def nbgrader_meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


# A provided cell a student may skip (a figure, a printed table): no other cell may depend on it.
OPTIONAL_TAG = "optional"


def is_optional(cell) -> bool:
    return OPTIONAL_TAG in cell.get("metadata", {}).get("tags", [])


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
