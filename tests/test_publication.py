"""Nothing public carries a solution or a hidden test: the student notebooks, the helper
wheel, and every page of the built book (pen-and-paper solutions included)."""

import re
import zipfile

import pytest

from autograder.course import PRIVATE_REGIONS, assignments
from autograder.leaks import HIDDEN_TESTS_ONLY, course_secrets, find_leaks, secrets_of
from conftest import ROOT, solution_notebook

BUILD = ROOT / "_build" / "html"


def all_secrets() -> set[str]:
    return set().union(*course_secrets().values())


def test_every_assignment_has_private_text_to_protect():
    for a in assignments():
        assert len(secrets_of(a)) >= 10, f"{a}: too few solution/hidden lines found"


@pytest.mark.parametrize("assignment", assignments())
def test_the_scan_finds_private_text_in_rendered_html(assignment):
    """The scanner sees through syntax highlighting: a source notebook rendered to HTML the way
    the book and the feedback are rendered is caught, solutions and hidden tests alike."""
    from nbconvert import HTMLExporter

    nb = solution_notebook(assignment)
    delimiters = tuple(PRIVATE_REGIONS) + tuple(PRIVATE_REGIONS.values())
    for cell in nb.cells:  # drop the markers: the body alone must be enough to be caught
        cell.source = "\n".join(l for l in cell.source.splitlines() if not any(d in l for d in delimiters))
    html, _ = HTMLExporter().from_notebook_node(nb)
    assert len(find_leaks(html, secrets_of(assignment), markers=())) >= 10
    assert find_leaks(html, secrets_of(assignment, HIDDEN_TESTS_ONLY), markers=())


def test_student_notebooks_hold_no_solution_or_hidden_test(released):
    secrets = all_secrets()
    notebooks = sorted(released.rglob("*.ipynb"))
    assert {p.parent.name for p in notebooks} == set(assignments())
    for path in notebooks:
        leaks = find_leaks(path.read_text(), secrets)
        assert not leaks, f"{path.name} leaks {leaks[:3]}"
        assert "raise NotImplementedError()" in path.read_text()


def test_helper_wheel_holds_only_the_helper_package(released):
    (wheel,) = released.glob("nnkit-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert all(n.startswith(("nnkit/", "nnkit-")) for n in names), names


@pytest.fixture(scope="module")
def book_pages():
    if not (BUILD / "index.html").exists():
        pytest.fail("the book is not built: run `make book` (make test does it first)")
    return sorted(BUILD.rglob("*.html")) + sorted(BUILD.rglob("*.ipynb")) + sorted(BUILD.rglob("*.md"))


def test_book_has_every_chapter_and_exercise_page(book_pages):
    built = {p.relative_to(BUILD).as_posix() for p in book_pages}
    for a in assignments():
        assert f"exercises/{a}.html" in built
        assert any(name.startswith(f"chapters/{a}/") and name.endswith(".html") for name in built), a
        # The exercise page offers the student notebook for download.
        assert f"_sources/exercises/{a}.ipynb" in built
        assert f'href="../_sources/exercises/{a}.ipynb"' in (BUILD / "exercises" / f"{a}.html").read_text()


def test_book_pages_hold_no_solution_or_hidden_test(book_pages):
    secrets = all_secrets()
    for path in book_pages:
        leaks = find_leaks(path.read_text(errors="replace"), secrets)
        assert not leaks, f"{path.relative_to(BUILD)} leaks {leaks[:3]}"


def pen_and_paper_solutions() -> list[str]:
    """Distinctive lines of every ```{solution} block in the chapter pages."""
    lines = []
    for page in sorted((ROOT / "chapters").rglob("*.md")):
        for block in re.findall(r"(?:```+|:::+)\{solution\}[^\n]*\n(.*?)\n(?:```|:::)", page.read_text(), re.S):
            lines += [" ".join(l.split()) for l in block.splitlines()
                      if len(l.strip()) >= 25 and not l.strip().startswith(":")]
    return lines


def test_pen_and_paper_solutions_are_not_published(book_pages):
    solutions = pen_and_paper_solutions()
    assert solutions, "the chapters have pen-and-paper questions with solutions"
    for path in book_pages:
        leaks = find_leaks(path.read_text(errors="replace"), set(solutions), markers=())
        assert not leaks, f"{path.relative_to(BUILD)} shows a pen-and-paper solution: {leaks[:2]}"


def test_readme_student_setup_installs_jupyter():
    """The wheel brings no notebook interface: the students' install line must."""
    readme = (ROOT / "README.md").read_text()
    students = readme[readme.index("## Students"):]
    install = next(line for line in students.splitlines() if line.startswith("pip install nnkit-"))
    assert any(front_end in install.split() for front_end in ("jupyterlab", "notebook")), install
