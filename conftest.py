"""pytest, for the whole repository: each exercise source under solutions/ is collected as
the notebook it stands for and run by nbval (errors fail; outputs are not compared).

The run is "Restart & Run All" for a student who skips what is optional: the cells tagged
`optional` (figures, tables) are moved to the end, so a cell that needs one of them, or a cell
further down, fails here. The optional cells still run, after everything else."""

from pathlib import Path

import nbformat

from autograder.course import is_optional, is_source, read_source, write_source_notebooks

SOLUTIONS = Path(__file__).resolve().parent / "solutions"
# The generated notebooks live in the build folder, which git ignores.
GENERATED = Path(__file__).resolve().parent / "_build" / "solution-notebooks"


def pytest_collect_file(file_path, parent):
    if file_path.parent.parent == SOLUTIONS and file_path.stem == file_path.parent.name \
            and is_source(file_path):
        from nbval.plugin import IPyNbFile

        assignment = file_path.stem
        write_source_notebooks(GENERATED, [assignment])  # with the files beside the notebook
        nb = read_source(assignment)
        nb.cells = [c for c in nb.cells if not is_optional(c)] + [c for c in nb.cells if is_optional(c)]
        path = GENERATED / assignment / f"{assignment}.ipynb"
        nbformat.write(nb, path)
        return IPyNbFile.from_parent(parent, path=path)
    return None
