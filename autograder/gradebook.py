"""The batch as one nbgrader gradebook (``OUT/gradebook.db``), for the tools instructors know.

Every submission is graded in a gradebook of its own, inside its sandboxed course folder; those
stay private to the run. This writes one gradebook for the whole batch, built on the batch's
template (its assignments, notebooks and cells): every student, a submission for every
notebook handed in, and as each test cell's score the points the trusted re-check gave, not
what the student's kernel claimed. ``nbgrader export`` and the formgrader read it as they read
any course's gradebook (``--CourseDirectory.db_url=sqlite:///OUT/gradebook.db``).

In each submitted notebook, one solution cell (the first by name) carries the grader's summary
as its automatic comment: the score, the row's status, and every test that lost points with
the reason.
"""

import os
import shutil
import warnings
from pathlib import Path

from nbgrader.api import Gradebook
from sqlalchemy.exc import SAWarning

from .course import COURSE_ID
from .result import Status


def _summary(row) -> str:
    lines = [f"Graded by the course's grader: {row.score:g} of {row.max_score:g} points "
             f"({row.status_text})."]
    lost = [t for t in row.tests if t.points < t.max_points]
    if lost:
        lines.append("Tests that lost points:")
        lines += [f"- {t.test_id} ({t.points:g}/{t.max_points:g}): {t.verdict.reason or t.verdict.outcome.value}"
                  for t in lost]
    return "\n".join(lines)


def write_gradebook(path: Path, template: Path, rows) -> None:
    """``rows``: the batch's :class:`grade.Row` objects; a missing submission gets no entry
    (nbgrader then counts it as zero, as grades.csv does)."""
    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(template, tmp)
    with Gradebook(f"sqlite:///{tmp}", COURSE_ID) as gb, warnings.catch_warnings():
        # nbgrader's add_submission trips SQLAlchemy's autoflush warnings on every call; the
        # records are written all the same (the export test reads them back).
        warnings.simplefilter("ignore", SAWarning)
        for student in sorted({row.student_id for row in rows}):
            gb.update_or_create_student(student)
        for row in rows:
            if row.status is Status.MISSING:
                continue
            submission = gb.add_submission(row.assignment_id, row.student_id)
            points = {t.test_id: t.points for t in row.tests}
            for notebook in submission.notebooks:
                for grade in notebook.grades:
                    # A test the grader never reached (an error row) earns nothing.
                    grade.auto_score = points.get(grade.name, 0.0)
                if notebook.comments:
                    first = min(notebook.comments, key=lambda c: c.cell.name)
                    first.auto_comment = _summary(row)
            gb.db.commit()
    os.replace(tmp, path)
