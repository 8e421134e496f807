"""The course-wide template: every exercise source, and every chapter around it, has the same
structure. Parametrized over the assignments, so a new chapter is checked by adding it.

A source opens with an intro cell and a setup cell; each solution cell has its regions and
becomes a stub for the student; each test cell has points, ends in no displayed value, and
swallows no failure; every solution cell is reached by at least one test, so that its stub
fails a test (the grading suite then proves that the untouched notebook scores zero). A cell
that only shows something is tagged `optional`, and nothing depends on it (the nbval run moves
those cells to the end, which proves it by execution; the check here names the cell). Each
chapter has its page, its table-of-contents entries, its README row and its reference tests.
"""

import ast

import nbformat
import pytest
import yaml

from autograder.course import (BEGIN_HIDDEN_TESTS, BEGIN_SOLUTION, END_HIDDEN_TESTS, END_SOLUTION, assignments,
                               is_optional, is_test_cell, nbgrader_meta, read_source, write_source)
from autograder.feedback import without_hidden_tests
from autograder.recheck import defined_names, strip_magics, used_names
from conftest import ROOT, SOLUTIONS

STUB = "raise NotImplementedError()"
# nbgrader records a test cell's displayed value as partial credit: only calls that return
# None may end one.
NONE_RETURNING = {"print", "check_array", "check_scalar", "check_close", "check_grad"}
# Handlers that would also catch the NotImplementedError of a stub.
CATCHES_STUB = {None, "Exception", "BaseException", "RuntimeError", "NotImplementedError"}

ASSIGNMENTS = assignments()


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def source(request):
    return request.param, read_source(request.param)


def test_there_are_assignments():
    assert len(ASSIGNMENTS) >= 4


def test_the_text_source_is_in_canonical_form(source, tmp_path):
    """Reading and writing a source gives the same text: it carries all a notebook needs, and
    an instructor's edit through a Jupyter pairing writes it in the same form."""
    assignment, nb = source
    rewritten = tmp_path / f"{assignment}.py"
    write_source(nb, rewritten)
    assert rewritten.read_text() == (SOLUTIONS / assignment / f"{assignment}.py").read_text()


def test_intro_and_setup_come_first(source):
    assignment, nb = source
    intro, setup = nb.cells[:2]
    assert intro.cell_type == "markdown" and intro.source.startswith("# "), \
        f"{assignment}: the first cell is the intro, a markdown cell with the exercise's title"
    assert setup.cell_type == "code" and nbgrader_meta(setup).get("locked"), \
        f"{assignment}: the second cell is the locked setup cell"
    assert any(isinstance(n, (ast.Import, ast.ImportFrom)) for n in ast.parse(strip_magics(setup.source)).body)
    assert nb.metadata.kernelspec.name == "python3"


def test_every_cell_has_nbgrader_metadata(source):
    assignment, nb = source
    ids = [nbgrader_meta(c).get("grade_id") for c in nb.cells]
    assert all(ids), f"{assignment}: a cell has no grade_id"
    assert len(ids) == len(set(ids)), f"{assignment}: grade_ids repeat"
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        assert meta["schema_version"] == 3
        # Only solution cells are the student's to edit.
        assert bool(meta.get("locked")) != bool(meta.get("solution")), meta["grade_id"]


def test_solution_cells_have_regions_that_become_stubs(source, released):
    assignment, nb = source
    student = {c.metadata.nbgrader["grade_id"]: c for c in
               nbformat.read(released / assignment / f"{assignment}.ipynb", as_version=4).cells}
    solutions = [c for c in nb.cells if nbgrader_meta(c).get("solution")]
    assert solutions, assignment
    for cell in solutions:
        grade_id = cell.metadata.nbgrader["grade_id"]
        assert cell.cell_type == "code" and not nbgrader_meta(cell).get("grade"), grade_id
        assert cell.source.count(BEGIN_SOLUTION) == cell.source.count(END_SOLUTION) >= 1, grade_id
        assert STUB in student[grade_id].source, f"{grade_id}: the student gets no stub"
        assert BEGIN_SOLUTION not in student[grade_id].source


def test_test_cells_have_points(source):
    assignment, nb = source
    tests = [c for c in nb.cells if is_test_cell(c)]
    assert len(tests) >= 5, assignment
    assert any(BEGIN_HIDDEN_TESTS in c.source for c in tests), f"{assignment} has no hidden tests"
    for cell in tests:
        meta = cell.metadata.nbgrader
        assert meta["grade_id"].startswith("test_") and meta["locked"], meta["grade_id"]
        assert 1 <= meta["points"] <= 3, meta["grade_id"]
        assert cell.source.count(BEGIN_HIDDEN_TESTS) == cell.source.count(END_HIDDEN_TESTS), meta["grade_id"]


def _ends_in_a_value(source: str) -> bool:
    body = ast.parse(strip_magics(source)).body
    if not body or not isinstance(body[-1], ast.Expr):
        return False
    call = body[-1].value
    return not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id in NONE_RETURNING)


def test_no_test_cell_ends_in_a_bare_expression(source):
    """Neither as graded (with hidden tests) nor as the student sees it."""
    assignment, nb = source
    for cell in filter(is_test_cell, nb.cells):
        for version in (cell.source, without_hidden_tests(cell.source)):
            assert not _ends_in_a_value(version), \
                f"{cell.metadata.nbgrader['grade_id']} ends in an expression nbgrader would display"


def test_no_test_cell_swallows_a_failure(source):
    """The except clause that would catch a stub's NotImplementedError (the first that matches
    it, in order) must raise."""
    assignment, nb = source
    for cell in filter(is_test_cell, nb.cells):
        for node in ast.walk(ast.parse(strip_magics(cell.source))):
            if not isinstance(node, ast.Try):
                continue
            for handler in node.handlers:
                types = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
                if {getattr(t, "id", None) for t in types} & CATCHES_STUB:
                    assert any(isinstance(n, ast.Raise) for n in ast.walk(handler)), \
                        f"{cell.metadata.nbgrader['grade_id']}: an except clause passes a stub's failure over"
                    break


def test_every_solution_cell_is_reached_by_a_test(source):
    """Through a test cell's own calls or a provided helper it calls (a driver function)."""
    assignment, nb = source
    provided = {}  # name -> the names its cell uses
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type == "code" and meta.get("locked") and not meta.get("grade"):
            for name in defined_names(cell.source):
                provided[name] = used_names(cell.source)
    reached = set()
    for cell in filter(is_test_cell, nb.cells):
        frontier = used_names(cell.source)
        while frontier - reached:
            new = frontier - reached
            reached |= new
            frontier = set().union(*(provided.get(n, set()) for n in new)) | reached
    for cell in nb.cells:
        if nbgrader_meta(cell).get("solution"):
            names = defined_names(cell.source)
            assert names & reached, f"{assignment}: no test calls anything {cell.metadata.nbgrader['grade_id']} " \
                                    f"defines ({sorted(names)})"


def _bound_names(source: str) -> set[str]:
    """Names a cell binds at top level: imports, definitions, assignments, loop variables."""
    names = set(defined_names(source))
    for node in ast.parse(strip_magics(source)).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.For, ast.With)):
            targets = [node.target] if isinstance(node, ast.For) else [i.optional_vars for i in node.items]
            names |= {n.id for t in targets if t is not None for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _bound_anywhere(source: str) -> set[str]:
    """Every name a cell binds, also inside its functions (parameters, locals, loop variables):
    a name used there is not taken from another cell."""
    names = set()
    for node in ast.walk(ast.parse(strip_magics(source))):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
    return names


def test_cells_that_only_show_something_are_optional(source):
    """A provided cell that draws a figure is tagged `optional`; solution and test cells never are."""
    assignment, nb = source
    for cell in nb.cells:
        meta = nbgrader_meta(cell)
        if cell.cell_type != "code":
            continue
        if is_optional(cell):
            assert meta.get("locked") and not meta.get("grade") and not meta.get("solution"), \
                f"{assignment}: {meta['grade_id']} is tagged optional but is a solution or test cell"
        elif not meta.get("grade") and not meta.get("solution"):
            assert "plt.show()" not in cell.source, \
                f"{assignment}: {meta['grade_id']} draws a figure: tag it `optional` (and move what it defines " \
                "that other cells need into a cell that is not)"


def test_no_cell_needs_a_name_only_an_optional_cell_binds(source):
    """After "Restart & Run All" without the optional cells, every name a cell uses is bound."""
    assignment, nb = source
    bound, optional_only = set(), {}
    for cell in (c for c in nb.cells if c.cell_type == "code"):
        grade_id = nbgrader_meta(cell)["grade_id"]
        if is_optional(cell):
            optional_only.update({n: grade_id for n in _bound_names(cell.source) - bound})
            continue
        needed = (used_names(cell.source) - _bound_anywhere(cell.source) - {"_"}) & optional_only.keys()
        assert not needed, f"{assignment}: {grade_id} uses " + ", ".join(
            f"{n} (bound only in the optional cell {optional_only[n]})" for n in sorted(needed))
        bound |= _bound_names(cell.source)
        for name in _bound_names(cell.source):
            optional_only.pop(name, None)


def test_each_chapter_has_page_toc_readme_row_and_reference_tests():
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    entries = {}
    for part in toc["parts"]:
        for chapter in part["chapters"]:
            entries[chapter["file"]] = [s["file"] for s in chapter.get("sections", [])]
    readme = (ROOT / "README.md").read_text()
    for assignment in ASSIGNMENTS:
        pages = sorted((ROOT / "chapters" / assignment).glob("*.md"))
        assert pages, f"{assignment} has no page under chapters/"
        page = f"chapters/{assignment}/{pages[0].stem}"
        assert page in entries, f"_toc.yml lacks {page}"
        assert f"exercises/{assignment}" in entries[page], f"_toc.yml lacks the exercise of {assignment}"
        assert f"| `{assignment}` |" in readme, f"README.md has no row for {assignment}"
        chapter = assignment.split("_")[0]
        assert (ROOT / "tests" / f"test_{chapter}_reference.py").exists(), f"no tests/test_{chapter}_reference.py"


def test_markdown_uses_no_book_only_syntax(source):
    """A notebook's text is read in Jupyter, where MyST roles such as {doc} do not render (and,
    from exercises/, they would point at the wrong folder in the book)."""
    assignment, nb = source
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for role in ("{doc}", "{ref}", "{numref}", "{eq}"):
                assert role not in cell.source, \
                    f"{assignment}: {nbgrader_meta(cell)['grade_id']} uses {role}: name the chapter in plain text"
