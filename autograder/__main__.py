"""Command line: ``python -m autograder release``, ``grade``, ``merge`` and ``report``."""

import argparse
import os
import sys
from pathlib import Path

from .course import ROOT


def _shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected I/N, e.g. 0/4") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{text!r}: expected 0 <= I < N")
    return index, count


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
    gr.add_argument("--shard", type=_shard, metavar="I/N",
                    help="grade only the I-th of N slices of the (student, assignment) pairs "
                         "(0 <= I < N), for spreading a batch over machines; see `merge`")

    me = sub.add_parser("merge", help="combine the --out folders of a sharded batch into one")
    me.add_argument("shards", type=Path, nargs="+", help="the --out folders of `grade --shard I/N`")
    me.add_argument("--out", type=Path, required=True, help="folder for the combined outputs")

    rep = sub.add_parser("report", help="write OUT/report.html and OUT/gradebook-wide.csv again")
    rep.add_argument("out", type=Path, help="the --out folder of a grading run or a merge")

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

    if args.command == "merge":
        from .merge import MergeError, merge
        try:
            count = merge(args.shards, args.out)
        except MergeError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"{count} row(s) from {len(args.shards)} shard(s) -> {args.out / 'grades.csv'}")
        return 0

    if args.command == "report":
        from .grade import ROWS_FILE, read_rows
        from .report import REPORT_FILE, write_report
        if not (args.out / ROWS_FILE).exists():
            print(f"error: no {ROWS_FILE} in {args.out}", file=sys.stderr)
            return 2
        header, rows = read_rows(args.out)
        write_report(args.out, header["assignments"], rows)
        print(args.out / REPORT_FILE)
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
                     progress=not args.quiet, assignment_ids=args.assignments, shard=args.shard)
    except (SandboxUnavailable, SubmissionsError, FileNotFoundError, UnknownAssignment) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    count = {status: sum(r.status is status for r in rows) for status in Status}
    print(f"{len(rows)} row(s): {count[Status.GRADED]} graded, {count[Status.MISSING]} missing, "
          f"{count[Status.ERROR]} with errors -> {args.out / 'grades.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
