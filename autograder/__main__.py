"""Command line: ``python -m autograder release`` and ``python -m autograder grade``."""

import argparse
import os
import sys
from pathlib import Path

from .course import ROOT


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    rel = sub.add_parser("release", help="generate the student notebooks of every assignment")
    rel.add_argument("--out", type=Path, default=ROOT / "release",
                     help="folder for <assignment>/<notebook>.ipynb (default: release/)")
    rel.add_argument("--book", type=Path, default=ROOT / "exercises",
                     help="folder where the book shows them (default: exercises/)")

    gr = sub.add_parser("grade", help="autograde a class's submissions")
    gr.add_argument("submissions", type=Path,
                    help="folder of <student>/<assignment>/<notebook>.ipynb, or a flat folder or .zip "
                         "of <student>_<notebook>.ipynb files (as learning-management systems export)")
    gr.add_argument("--out", type=Path, required=True, help="folder for grades.csv, tests.csv, feedback/")
    gr.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                    help="submissions graded at once (default: the number of cores)")
    gr.add_argument("--cell-timeout", type=int, default=60, help="seconds per cell (default 60)")
    gr.add_argument("--notebook-timeout", type=int, default=900,
                    help="seconds per notebook, all cells and the re-check together (default 900)")
    gr.add_argument("--unsafe-no-sandbox", action="store_true",
                    help="run student code without the sandbox (only where bubblewrap cannot run)")
    gr.add_argument("--assignments", type=lambda text: [a for a in text.split(",") if a],
                    help="comma-separated assignment ids to grade; a student without one gets a "
                         "'missing' row (default: the assignments anyone handed in)")
    gr.add_argument("--quiet", action="store_true", help="no progress bar")

    args = parser.parse_args(argv)
    if args.command == "release":
        from .release import ReleaseError, release
        try:
            written, reveals = release(args.out, args.book)
        except ReleaseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for reveal in reveals:
            print(f"deliberate reveal: {reveal}")
        for path in written:
            print(path.relative_to(args.out) if path.is_relative_to(args.out) else path)
        print(f"{sum(p.suffix == '.ipynb' for p in written)} student notebook(s) and the nnkit wheel in {args.out}; book copies in {args.book}")
        return 0

    from .collect import SubmissionsError
    from .grade import SandboxUnavailable, Settings, UnknownAssignment, grade
    from .result import Status
    if args.unsafe_no_sandbox:
        print("WARNING: --unsafe-no-sandbox: student code runs unsandboxed, with this user's rights, "
              "network and files.", file=sys.stderr)
    try:
        rows = grade(args.submissions, args.out, jobs=args.jobs,
                     settings=Settings(args.cell_timeout, args.notebook_timeout, not args.unsafe_no_sandbox),
                     progress=not args.quiet, assignment_ids=args.assignments)
    except (SandboxUnavailable, SubmissionsError, FileNotFoundError, UnknownAssignment) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = {status: sum(r.status is status for r in rows) for status in Status}
    print(f"{len(rows)} row(s): {count[Status.GRADED]} graded, {count[Status.MISSING]} missing, "
          f"{count[Status.ERROR]} with errors -> {args.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
