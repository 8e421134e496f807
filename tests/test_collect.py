"""Submissions as learning-management systems export them: flat folders and zip files."""

import zipfile

import pytest

from autograder.collect import SubmissionsError, normalize
from autograder.course import assignments


@pytest.fixture
def two_assignments():
    names = assignments()
    assert len(names) >= 2
    return names[0], names[1]


def test_flat_folder_is_sorted_by_student_and_notebook(tmp_path, two_assignments):
    first, second = two_assignments
    flat = tmp_path / "lms"
    flat.mkdir()
    (flat / f"alice_{first}.ipynb").write_text("{}")
    (flat / f"bob_smith_{second}.ipynb").write_text("{}")  # ids may hold underscores
    (flat / "stray.ipynb").write_text("{}")
    (flat / "readme.txt").write_text("not a notebook")
    folder, skipped = normalize(flat, tmp_path / "work")
    assert (folder / "alice" / first / f"{first}.ipynb").exists()
    assert (folder / "bob_smith" / second / f"{second}.ipynb").exists()
    assert skipped == ["stray.ipynb"]
    assert sorted(p.name for p in folder.iterdir()) == ["alice", "bob_smith"]


def test_nested_folder_is_used_as_it_is(tmp_path, two_assignments):
    first, _ = two_assignments
    (tmp_path / "subs" / "alice" / first).mkdir(parents=True)
    folder, skipped = normalize(tmp_path / "subs", tmp_path / "work")
    assert folder == tmp_path / "subs" and skipped == []


def test_zip_of_flat_files(tmp_path, two_assignments):
    first, _ = two_assignments
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"export/carol_{first}.ipynb", "{}")
        zf.writestr("__MACOSX/._junk", "x")
    folder, _ = normalize(archive, tmp_path / "work")
    assert (folder / "carol" / first / f"{first}.ipynb").read_text() == "{}"


def test_zip_of_nested_layout(tmp_path, two_assignments):
    first, _ = two_assignments
    archive = tmp_path / "nested.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"dave/{first}/{first}.ipynb", "{}")
    folder, _ = normalize(archive, tmp_path / "work")
    assert (folder / "dave" / first / f"{first}.ipynb").exists()


@pytest.mark.parametrize("bad", ["../escape.ipynb", "/abs/path.ipynb"])
def test_zip_with_unsafe_paths_is_refused(tmp_path, bad):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(bad, "{}")
    with pytest.raises(SubmissionsError, match="unsafe path"):
        normalize(archive, tmp_path / "work")
    assert not (tmp_path / "escape.ipynb").exists()
