"""Generate the student notebooks with nbgrader: no solutions, no hidden tests."""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory

from .course import ROOT, SOLUTIONS, assignments, nbgrader_config
from .leaks import find_leaks, secrets_of


class ReleaseError(RuntimeError):
    pass


def generate(course_root: Path, assignment_ids: list[str] | None = None) -> Path:
    """Run ``generate_assignment`` for the assignments into ``course_root``: its gradebook
    then knows every test cell, and ``course_root/release`` holds the student versions."""
    course_root.mkdir(parents=True, exist_ok=True)
    config = nbgrader_config(course_root, SOLUTIONS)
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    for assignment in assignment_ids or assignments():
        result = api.generate_assignment(assignment, force=True, create=True)
        if not result["success"]:
            raise ReleaseError(f"nbgrader generate_assignment {assignment} failed:\n"
                               f"{result.get('log', '')}\n{result.get('error', '')}")
    return course_root / "release"


def release(out: Path, book_dir: Path | None = None) -> list[Path]:
    """Write ``out/<assignment>/<notebook>.ipynb`` for every assignment (and a copy in
    ``book_dir/<assignment>.ipynb`` for the book), refusing to write a notebook that still
    holds solution or hidden-test text."""
    written = []
    with tempfile.TemporaryDirectory(prefix="release-") as tmp:
        generated = generate(Path(tmp))
        for assignment in assignments():
            secrets = secrets_of(SOLUTIONS / assignment)
            for notebook in sorted((generated / assignment).glob("*.ipynb")):
                leaks = find_leaks(notebook.read_text(), secrets)
                if leaks:
                    raise ReleaseError(f"{notebook.name} would publish private text: {leaks[:3]}")
                target = out / assignment / notebook.name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(notebook, target)
                written.append(target)
                if book_dir is not None and notebook.stem == assignment:
                    book_dir.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(notebook, book_dir / notebook.name)
    written.append(build_nnkit_wheel(out))
    return written


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
