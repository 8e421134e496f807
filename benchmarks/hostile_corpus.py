"""Grade the hostile-submission corpus (tests/hostile_corpus.py) and print a table:
submission, what it tries, the score it deserves, the score and status it got, and the
in-kernel points nbgrader alone would have given where the two differ."""

import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from hostile_corpus import run_corpus  # noqa: E402


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows, cases, _, integrity = run_corpus(Path(tmp), ROOT)
    in_kernel = defaultdict(float)
    for r in integrity:
        if r["test_id"]:
            in_kernel[r["student_id"]] += float(r["in_kernel_points"] or 0) - float(r["trusted_points"] or 0)
    print("| submission | tries | expected | got | status | nbgrader alone |")
    print("| --- | --- | --- | --- | --- | --- |")
    for case in cases:
        row = rows[case.student]
        alone = float(row["score"]) + in_kernel[case.student]
        ok = "" if float(row["score"]) == case.score and row["status"].startswith(case.status) else " ✗"
        print(f"| {case.name} | {case.what} | {case.score:g} | {float(row['score']):g}{ok} | "
              f"{row['status'][:70]} | {alone:g} |")


if __name__ == "__main__":
    main()
