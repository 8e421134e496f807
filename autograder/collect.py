"""Accept submissions the way learning-management systems export them.

``grade`` takes any of:
- a folder laid out as ``<student>/<assignment>/<notebook>.ipynb`` (nbgrader's own layout);
- a flat folder of ``<student>_<notebook>.ipynb`` files (nbgrader's ``zip_collect``
  convention): the notebook name is matched against the course's notebooks, so student ids and
  notebook names may themselves contain underscores;
- a ``.zip`` file of either, extracted safely (no absolute or ``..`` paths, no links, bounded
  size).
Anything else in a flat folder is listed as skipped, never silently graded under a guess.
"""

import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from .course import assignments, notebooks

MAX_ZIP_BYTES = 2 * 1024**3
MAX_ZIP_MEMBERS = 100_000


class SubmissionsError(ValueError):
    pass


def _extract(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        if len(members) > MAX_ZIP_MEMBERS or sum(m.file_size for m in members) > MAX_ZIP_BYTES:
            raise SubmissionsError(f"{archive.name} is too large to extract")
        for member in members:
            name = PurePosixPath(member.filename)
            if name.is_absolute() or ".." in name.parts or stat.S_ISLNK(member.external_attr >> 16):
                raise SubmissionsError(f"{archive.name} holds an unsafe path: {member.filename!r}")
            if member.is_dir() or name.name.startswith(".") or "__MACOSX" in name.parts:
                continue
            destination = target.joinpath(*name.parts)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst)
    # An archive of a single top folder: its content is the submissions.
    entries = [p for p in target.iterdir()]
    if len(entries) == 1 and entries[0].is_dir() and not _looks_nested(target):
        inner = entries[0]
        for item in inner.iterdir():
            item.rename(target / item.name)
        inner.rmdir()


def _looks_nested(folder: Path) -> bool:
    known = set(assignments())
    return any(p.is_dir() and any((p / a).is_dir() for a in known) for p in folder.iterdir())


def _flat_owner(filename: str, known: dict[str, str]) -> tuple[str, str, str] | None:
    """``alice_ch0_building_blocks.ipynb`` -> (alice, ch0_building_blocks, ch0_building_blocks)."""
    stem = filename[: -len(".ipynb")]
    for notebook in sorted(known, key=len, reverse=True):
        if stem.endswith("_" + notebook) and len(stem) > len(notebook) + 1:
            return stem[: -len(notebook) - 1], known[notebook], notebook
    return None


def normalize(submissions: Path, work: Path) -> tuple[Path, list[str]]:
    """A folder in nbgrader's layout for ``submissions``, and the names of skipped files."""
    if submissions.is_file() and zipfile.is_zipfile(submissions):
        extracted = work / "extracted"
        shutil.rmtree(extracted, ignore_errors=True)
        extracted.mkdir(parents=True)
        _extract(submissions, extracted)
        submissions = extracted
    if not submissions.is_dir():
        raise SubmissionsError(f"not a folder or a zip file: {submissions}")
    flat = sorted(p for p in submissions.iterdir() if p.is_file() and p.suffix == ".ipynb")
    if not flat:
        return submissions, []
    known = {nb: a for a in assignments() for nb in notebooks(a)}
    collected = work / "collected"
    shutil.rmtree(collected, ignore_errors=True)
    collected.mkdir(parents=True)
    skipped = []
    for path in flat:
        owner = _flat_owner(path.name, known)
        if owner is None:
            skipped.append(path.name)
            continue
        student, assignment, notebook = owner
        target = collected / student / assignment / f"{notebook}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    for path in submissions.iterdir():  # a nested part next to the flat files still counts
        if path.is_dir() and not path.name.startswith("."):
            shutil.copytree(path, collected / path.name, dirs_exist_ok=True)
    return collected, skipped
