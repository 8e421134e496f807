"""pytest, for the whole repository: each exercise source under solutions/ is collected as
the notebook it stands for and run by nbval (errors fail; outputs are not compared).

The run is "Restart & Run All" for a student who skips what is optional: the cells tagged
`optional` (figures, tables) are moved to the end, so a cell that needs one of them, or a cell
further down, fails here. The optional cells still run, after everything else."""

from pathlib import Path

import nbformat
import pytest

from autograder.course import is_optional, is_source, read_source, write_source_notebooks

SOLUTIONS = Path(__file__).resolve().parent / "solutions"
# The generated notebooks live in the build folder, which git ignores.
GENERATED = Path(__file__).resolve().parent / "_build" / "solution-notebooks"


def pytest_collect_file(file_path, parent):
    if _is_exercise_source(file_path):
        from nbval.plugin import IPyNbFile

        class ExerciseNotebook(IPyNbFile):
            """The source's node (so that `pytest solutions/<id>/<id>.py` selects it), run from
            the notebook generated from it (nbval reads and runs the file at ``self.path``)."""

            def collect(self):
                self.path = _generate(file_path.stem)
                yield from super().collect()

        return ExerciseNotebook.from_parent(parent, path=file_path)
    return None


class _NotATestModule(pytest.File):
    def collect(self):
        return []


def pytest_pycollect_makemodule(module_path, parent):
    """An exercise source named on the command line is run as a notebook (above), never
    imported as a test module: importing it would run the whole exercise."""
    if _is_exercise_source(module_path):
        return _NotATestModule.from_parent(parent, path=module_path)
    return None


def _is_exercise_source(path: Path) -> bool:
    return path.parent.parent == SOLUTIONS and path.stem == path.parent.name and is_source(path)


def _generate(assignment: str) -> Path:
    write_source_notebooks(GENERATED, [assignment])  # with the files beside the notebook
    nb = read_source(assignment)
    nb.cells = [c for c in nb.cells if not is_optional(c)] + [c for c in nb.cells if is_optional(c)]
    path = GENERATED / assignment / f"{assignment}.ipynb"
    nbformat.write(nb, path)
    return path
