"""Generate the student notebooks with nbgrader: no solutions, no hidden tests."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from .course import ROOT, assignments, nbgrader_config, write_source_notebooks
from .leaks import course_secrets, deliberate_reveals, find_leaks


class ReleaseError(RuntimeError):
    pass


def generate(course_root: Path, assignment_ids: list[str] | None = None) -> Path:
    """Run ``generate_assignment`` for the assignments into ``course_root``: its gradebook
    then knows every test cell, and ``course_root/release`` holds the student versions."""
    assignment_ids = assignment_ids or assignments()
    source = write_source_notebooks(course_root / "source", assignment_ids)
    config = nbgrader_config(course_root, source)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    for assignment in assignment_ids:
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise ReleaseError(f"nbgrader generate_assignment {assignment} failed:\n"
                               f"{result.get('log', '')}\n{result.get('error', '')}")
    return course_root / "release"


def release(out: Path, book_dir: Path | None = None) -> tuple[list[Path], list[str]]:
    """Write ``out/<assignment>/<notebook>.ipynb`` for every assignment (and a copy in
    ``book_dir/<assignment>.ipynb`` for the book), refusing to write a notebook that holds
    solution or hidden-test text of any assignment. Returns the files written and the
    declared reveals (an earlier solution handed out by a later chapter)."""
    written = []
    try:
        reveals = deliberate_reveals()
        secrets = course_secrets()
    except ValueError as exc:  # a malformed reveals.toml
        raise ReleaseError(str(exc)) from None
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        generated = generate(Path(tmp))
        for assignment in assignments():
            for notebook in sorted((generated / assignment).glob("*.ipynb")):
                text = notebook.read_text()
                for owner, private in secrets.items():
                    leaks = find_leaks(text, private)
                    if leaks:
                        hint = ("" if owner == assignment else
                                f" (a later chapter handing out {owner}'s solution on purpose declares "
                                f"it in solutions/reveals.toml)")
                        raise ReleaseError(f"{assignment}/{notebook.name} would publish private text of "
                                           f"{owner}: {leaks[:3]}{hint}")
                target = out / assignment / notebook.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(notebook, target)
                written.append(target)
                if book_dir is not None and notebook.stem == assignment:
                    book_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(notebook, book_dir / notebook.name)
    written.append(build_nnkit_wheel(out))
    return written, reveals


def build_nnkit_wheel(out: Path) -> Path:
    """The helper package as a wheel students install with pip (it holds nnkit/ only)."""
    for old in out.glob("nnkit-*.whl"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="nnkit-build-") as tmp:
        # Built from a copy so that no build folder lands in the repository.
        for name in ("pyproject.toml", "nnkit"):
            src = ROOT / name
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copyfile(src, Path(tmp) / name)
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                        "--no-build-isolation", "--wheel-dir", str(out), tmp], check=True)
    (wheel,) = out.glob("nnkit-*.whl")
    return wheel
