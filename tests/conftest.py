"""Shared fixtures: paths, the solved notebooks under nbval, and the reference solutions.

Each solution notebook executes twice in the suite, no more: top to bottom in a fresh kernel
under nbval (collected from its text source by the conftest.py at the top of the repository;
this is also the "Restart & Run All" check) and once through the grader (``test_grading.py``, nbgrader's run and the re-check).
The reference tests need the solutions' functions in this process: they get the notebook's
definitions — imports, functions, classes, constants — loaded like a module, not a run of it.
"""

import ast
import functools
from pathlib import Path

import nbformat
import pytest

from autograder.course import is_test_cell, read_source
from autograder.recheck import strip_magics

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"


def solution_notebook(assignment: str):
    """The solved source notebook, as nbformat reads it."""
    return read_source(assignment)


def _is_definition(node: ast.stmt) -> bool:
    """Imports, functions, classes, and names bound to values that call nothing."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.ClassDef)):
        return True
    if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
        return not any(isinstance(n, ast.Call) for n in ast.walk(node.value))
    return False


@functools.lru_cache(maxsize=None)
def _definitions(assignment: str) -> dict:
    namespace: dict = {"__name__": f"solution_{assignment}"}
    for cell in solution_notebook(assignment).cells:
        if cell.cell_type != "code" or is_test_cell(cell):
            continue
        tree = ast.parse(strip_magics(cell.source))
        tree.body = [node for node in tree.body if _is_definition(node)]
        exec(compile(tree, f"<{assignment}>", "exec"), namespace)
    return namespace


@pytest.fixture(scope="session")
def reference():
    """``reference("ch0_building_blocks")`` gives the definitions of the solved notebook
    (imports, functions, classes, constants of every cell except the test cells)."""
    return _definitions


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """The student release, generated afresh by the real command line."""
    import subprocess
    import sys

    out = tmp_path_factory.mktemp("release")
    book = tmp_path_factory.mktemp("book-exercises")
    subprocess.run([sys.executable, "-m", "autograder", "release", "--out", str(out), "--book", str(book)],
                   cwd=ROOT, check=True, capture_output=True, text=True, timeout=600)
    return out


def write_notebook(nb, path: Path) -> Path:
    """Write a notebook node as ``.ipynb`` (a submission, a fixture)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path

