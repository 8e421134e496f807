"""Damaged submissions, put back into the shape of the exercise before they are graded.

Students delete, duplicate, retype and move cells, and paste their code into fresh notebooks.
A submission is graded on its code as if the course's cells were intact: every cell of the
released notebook is present once, in the released order — the student's own copy where there
is one (nbgrader then restores what the student changed in a locked cell), the released cell
where it is missing — and the cells the student added stay where they were, after the cell
they followed. An answer cell that is missing is left out when the student's added cells
define its functions (a retyped or pasted answer), and restored as the released stub when they
do not. Only a notebook in which nothing of the exercise can be found is refused.

nbgrader's own repair (``add_missing_cells``) only restores test cells, and fails on a test cell
whose neighbour is a provided cell; after this step it has nothing left to do.
"""

import copy

from .course import nbgrader_meta
from .recheck import defined_names


class Unrecognizable(ValueError):
    """Nothing in the submitted notebook belongs to the exercise."""


def _grade_id(cell) -> str | None:
    return nbgrader_meta(cell).get("grade_id")


def _without_nbgrader(cell):
    cell = copy.deepcopy(cell)
    cell.get("metadata", {}).pop("nbgrader", None)
    return cell


def _names(cells) -> set[str]:
    return set().union(*(defined_names(c.source) for c in cells if c.cell_type == "code"))


def rebuild(submitted, released) -> tuple[object, list[str]]:
    """``submitted`` rebuilt on the cells of ``released`` (the student version of the same
    notebook). Returns the notebook to grade and notes for the instructor (empty when the
    notebook was intact). Raises ``Unrecognizable`` when no cell and no answer of the exercise
    is in it."""
    template = {_grade_id(c): c for c in released.cells}
    order = [_grade_id(c) for c in released.cells]
    answers = {g for g, c in template.items() if nbgrader_meta(c).get("solution")}
    matched: dict[str, object] = {}
    added: dict[str | None, list] = {}   # cells the student added, by the course cell they follow
    notes: list[str] = []
    duplicated, dropped = [], []
    anchor = None
    for cell in submitted.cells:
        grade_id = _grade_id(cell)
        known = template.get(grade_id)
        if known is not None and known.cell_type == cell.cell_type and grade_id not in matched:
            matched[grade_id] = cell
            anchor = grade_id
        elif known is not None and grade_id in answers and grade_id in matched:
            # A copy of an answer cell runs where it stood, as it did in the student's notebook.
            duplicated.append(grade_id)
            added.setdefault(anchor, []).append(_without_nbgrader(cell))
        elif known is not None and grade_id not in answers and grade_id in matched:
            dropped.append(grade_id)  # a copy of a course cell: the course's one counts, once
        else:
            added.setdefault(anchor, []).append(_without_nbgrader(cell))
    student_names = _names([c for cells in added.values() for c in cells])
    if not matched and not student_names & _names([template[g] for g in answers]):
        raise Unrecognizable(
            "none of the exercise's cells or functions are in it: hand in the released notebook "
            "with your code in its answer cells")

    cells, restored, stubbed, found_elsewhere = [], [], [], []
    for grade_id in order:
        if grade_id in matched:
            cells.append(matched[grade_id])
        elif grade_id in answers:
            if defined_names(template[grade_id].source) & student_names:
                found_elsewhere.append(grade_id)  # a retyped answer: the student's cell defines it
            else:
                cells.append(copy.deepcopy(template[grade_id]))
                stubbed.append(grade_id)
        else:
            cells.append(copy.deepcopy(template[grade_id]))
            restored.append(grade_id)
        # Cells added before any course cell go after the setup cell: they need its imports.
        if grade_id == order[min(1, len(order) - 1)]:
            cells.extend(added.pop(None, []))
        cells.extend(added.pop(grade_id, []))
    cells.extend(added.pop(None, []))

    as_submitted = [_grade_id(c) for c in submitted.cells if matched.get(_grade_id(c)) is c]
    if as_submitted != [g for g in order if g in matched]:
        notes.append("cells put back in the exercise's order")
    if restored:
        notes.append(f"{len(restored)} course cell(s) missing, restored: {', '.join(restored[:5])}"
                     f"{', ...' if len(restored) > 5 else ''}")
    if stubbed:
        notes.append(f"answer cell(s) missing, graded as unanswered: {', '.join(stubbed)}")
    if found_elsewhere:
        notes.append(f"answer cell(s) {', '.join(found_elsewhere)} found as cells without the course's "
                     "metadata (retyped or pasted): graded where they stand")
    if duplicated:
        notes.append(f"answer cell(s) duplicated, every copy runs in order: {', '.join(sorted(set(duplicated)))}")
    if dropped:
        notes.append(f"duplicated course cell(s) counted once: {', '.join(sorted(set(dropped)))}")
    nb = copy.deepcopy(submitted)
    nb.cells = cells
    return nb, notes
