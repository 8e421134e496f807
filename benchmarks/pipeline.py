"""Figures for the course pipeline, printed as a table (run with `make bench`).

- book: clean build (release + jupyter-book, empty execution cache), no-change rebuild, and a
  rebuild after one page's text changed;
- each solution notebook's run time on this machine's CPU (nbclient);
- grading time per notebook: `python -m autograder grade` (own course folder, feedback, leak
  check) against bare `nbgrader autograde` on the same reference notebook, and a batch graded
  with --jobs 1 and --jobs 2; the ratios are printed with their targets (grading at most 1.5x
  bare nbgrader; --jobs 2 at least 1.7x the throughput of --jobs 1 on 2 cores).

Ratios are measured within one run, on one machine; timings are not asserted anywhere.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from autograder.course import assignments, read_source, write_source_notebooks  # noqa: E402

BIN = Path(sys.executable).parent


def timed(command, cwd=ROOT) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def book_times() -> list[tuple[str, float]]:
    build = [str(BIN / "jupyter-book"), "build", ".", "--warningiserror", "--nitpick", "--keep-going"]
    release = [sys.executable, "-m", "autograder", "release", "--out", "release", "--book", "exercises"]
    shutil.rmtree(ROOT / "_build", ignore_errors=True)
    clean = timed(release) + timed(build)
    again = timed(build)
    page = next((ROOT / "chapters").rglob("*.md"))
    text = page.read_text()
    try:
        page.write_text(text + "\n")  # a text-only edit: the page's code is unchanged, its cache hits
        one = timed(build)
    finally:
        page.write_text(text)
    timed(build)
    return [("book: clean build (release + execute + render)", clean),
            ("book: rebuild, nothing changed", again),
            (f"book: rebuild after editing {page.name}", one)]


def notebook_times() -> list[tuple[str, float]]:
    rows = []
    for a in assignments():
        nb = read_source(a)
        start = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "solutions" / a)}}).execute()
        rows.append((f"solution notebook {a}: run on CPU", time.perf_counter() - start))
    return rows


def grading_times(chosen: list[str]) -> tuple[list[tuple[str, float]], list[tuple[str, float, str]]]:
    """Per notebook: bare nbgrader autograde vs `python -m autograder grade` (sandbox, trusted
    re-check, feedback); then a batch of 4 submissions with --jobs 1 and --jobs 2. Returns the
    times and the ratios (name, ratio, target)."""
    rows, ratios = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        sources = write_source_notebooks(tmp / "sources")  # the .ipynb nbgrader reads
        for a in chosen:
            subs = tmp / f"subs-{a}"
            (subs / "reference" / a).mkdir(parents=True)
            shutil.copyfile(sources / a / f"{a}.ipynb", subs / "reference" / a / f"{a}.ipynb")
            ours = timed([sys.executable, "-m", "autograder", "grade", str(subs),
                          "--out", str(tmp / f"out-{a}"), "--jobs", "1", "--quiet"])
            # Bare nbgrader on the same notebook: generate_assignment (untimed), then autograde.
            course = tmp / f"bare-{a}"
            shutil.copytree(sources / a, course / "source" / a)
            subprocess.run([str(BIN / "nbgrader"), "generate_assignment", a, "--force"], cwd=course,
                           check=True, capture_output=True)
            shutil.copytree(sources / a, course / "submitted" / "reference" / a)
            bare = timed([str(BIN / "nbgrader"), "autograde", a, "--Autograde.create_student=True",
                          "--Execute.timeout=120"], cwd=course)
            rows += [(f"grade {a}: bare nbgrader autograde, 1 notebook", bare),
                     (f"grade {a}: python -m autograder grade, 1 notebook", ours)]
            ratios.append((f"grading cost {a}: autograder grade / bare nbgrader autograde", ours / bare,
                           "<= 1.5"))
        first = chosen[0]
        batch = tmp / "batch"
        for student in ("s1", "s2", "s3", "s4"):
            (batch / student / first).mkdir(parents=True)
            shutil.copyfile(sources / first / f"{first}.ipynb", batch / student / first / f"{first}.ipynb")
        batch_seconds = {}
        for jobs in (1, 2):
            seconds = timed([sys.executable, "-m", "autograder", "grade", str(batch), "--out",
                             str(tmp / f"batch-out-{jobs}"), "--jobs", str(jobs), "--quiet"])
            batch_seconds[jobs] = seconds
            rows.append((f"grade 4 submissions of {first} (plus 'missing' rows), --jobs {jobs}", seconds))
        ratios.append(("throughput: --jobs 2 / --jobs 1", batch_seconds[1] / batch_seconds[2], ">= 1.7"))
    return rows, ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--skip-book", action="store_true", help="leave the book out (it takes minutes)")
    parser.add_argument("--grading-only", action="store_true", help="only the grading times and ratios")
    parser.add_argument("--assignments", type=lambda text: text.split(","), default=None,
                        help="comma-separated assignments to grade (default: all)")
    args = parser.parse_args()
    rows = [] if args.skip_book or args.grading_only else book_times()
    rows += [] if args.grading_only else notebook_times()
    grading, ratios = grading_times(args.assignments or assignments())
    rows += grading
    width = max(len(name) for name, _ in rows)
    print(f"{'measurement'.ljust(width)}  seconds")
    for name, seconds in rows:
        print(f"{name.ljust(width)}  {seconds:7.1f}")
    print()
    width = max(len(name) for name, _, _ in ratios)
    print(f"{'ratio, measured in this run'.ljust(width)}  value  target")
    for name, value, target in ratios:
        print(f"{name.ljust(width)}  {value:5.2f}  {target}")


if __name__ == "__main__":
    main()
