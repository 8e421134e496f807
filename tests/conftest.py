"""Shared fixtures: paths, and the reference solution of an assignment as a namespace."""

import functools
from pathlib import Path

import nbformat
import pytest

from autograder.course import is_test_cell

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"


def solution_notebook(assignment: str) -> Path:
    return SOLUTIONS / assignment / f"{assignment}.ipynb"


@functools.lru_cache(maxsize=None)
def _namespace(assignment: str) -> dict:
    nb = nbformat.read(solution_notebook(assignment), as_version=4)
    namespace: dict = {"__name__": f"solution_{assignment}"}
    for cell in nb.cells:
        if cell.cell_type == "code" and not is_test_cell(cell):
            source = "\n".join(line for line in cell.source.splitlines()
                               if not line.lstrip().startswith(("%", "!")))
            exec(compile(source, f"<{assignment}>", "exec"), namespace)
    return namespace


@pytest.fixture(scope="session")
def reference():
    """``reference("ch0_building_blocks")`` gives the namespace of the solved notebook
    (every code cell except the test cells, executed once per session)."""
    return _namespace


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
