"""pytest, for the whole repository: each exercise source under solutions/ is collected as
the notebook it stands for and run by nbval (errors fail; outputs are not compared)."""

from pathlib import Path

from autograder.course import is_source, write_source_notebooks

SOLUTIONS = Path(__file__).resolve().parent / "solutions"
# The generated notebooks live in the build folder, which git ignores.
GENERATED = Path(__file__).resolve().parent / "_build" / "solution-notebooks"


def pytest_collect_file(file_path, parent):
    if file_path.parent.parent == SOLUTIONS and file_path.stem == file_path.parent.name \
            and is_source(file_path):
        from nbval.plugin import IPyNbFile

        write_source_notebooks(GENERATED, [file_path.stem])
        return IPyNbFile.from_parent(parent, path=GENERATED / file_path.stem / f"{file_path.stem}.ipynb")
    return None
