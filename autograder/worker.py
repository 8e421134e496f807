"""Autograde one submission in its own nbgrader course folder (run as a subprocess).

Each (student, assignment) pair is graded in a folder of its own with a private copy of the
gradebook, so submissions cannot lock or overwrite each other's records, a crash or time-out
ends only this process, and batches can run in parallel.

    python -m autograder.worker COURSE_ROOT ASSIGNMENT STUDENT --cell-timeout 60
"""

import argparse
import json
import sys
from pathlib import Path

from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
from nbgrader.apps import NbGraderAPI
from nbgrader.coursedir import CourseDirectory
from nbgrader.preprocessors import GetGrades

from .course import nbgrader_config
from .feedback import SanitizeFeedback


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("assignment")
    parser.add_argument("student")
    parser.add_argument("--cell-timeout", type=int, default=60)
    args = parser.parse_args(argv)

    config = nbgrader_config(args.root, args.root / "source", cell_timeout=args.cell_timeout)
    config.GenerateFeedback.preprocessors = [GetGrades, SanitizeFeedback, CSSHTMLHeaderPreprocessor]
    api = NbGraderAPI(CourseDirectory(config=config), config=config)
    result = {"autograde": api.autograde(args.assignment, args.student, force=True, create=True)}
    if result["autograde"]["success"]:
        result["feedback"] = api.generate_feedback(args.assignment, args.student, force=True)
    (args.root / "worker.json").write_text(json.dumps(result))
    return 0 if all(r["success"] for r in result.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
