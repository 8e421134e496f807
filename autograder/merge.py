"""Put the outputs of a sharded batch back together: ``python -m autograder merge OUT1 OUT2 …
--out OUT`` writes into OUT the same files one run over all the submissions writes.

Each shard's folder holds ``rows.json`` (its header: the batch's assignments and students and
which shard it was, then its rows), its CSV files and its feedback. The merge refuses shards
of different batches, a shard given twice, and a missing shard, and names them: a merged
batch is either complete or not written.
"""

import shutil
from pathlib import Path

from .grade import ROWS_FILE, read_rows, write_outputs


class MergeError(ValueError):
    pass


def merge(shards: list[Path], out: Path) -> int:
    """Returns the number of rows written."""
    headers, rows = [], []
    for folder in shards:
        if not (folder / ROWS_FILE).exists():
            raise MergeError(f"{folder}: no {ROWS_FILE}; is it the --out folder of a finished grading run?")
        header, shard_rows = read_rows(folder)
        headers.append(header)
        rows += shard_rows
    first = headers[0]
    for folder, header in zip(shards, headers):
        if (header["assignments"], header["students"]) != (first["assignments"], first["students"]):
            raise MergeError(f"{folder} is a shard of another batch (other assignments or students) "
                             f"than {shards[0]}")
    count = first["shard"][1]
    indices = [h["shard"][0] for h in headers]
    if any(h["shard"][1] != count for h in headers):
        raise MergeError("the shards were cut in different numbers: "
                         + ", ".join(f"{f}: {h['shard'][0]}/{h['shard'][1]}" for f, h in zip(shards, headers)))
    repeated = sorted({i for i in indices if indices.count(i) > 1})
    missing = sorted(set(range(count)) - set(indices))
    if repeated or missing:
        raise MergeError(f"shards of {count}: " + "; ".join(
            part for part in (f"given twice: {repeated}" if repeated else "",
                              f"missing: {missing}" if missing else "") if part))
    keys = [(r.student_id, r.assignment_id) for r in rows]
    if len(set(keys)) != len(keys):
        raise MergeError("a (student, assignment) row appears in two shards")

    out.mkdir(parents=True, exist_ok=True)
    for folder in shards:
        if (folder / "feedback").is_dir():
            shutil.copytree(folder / "feedback", out / "feedback", dirs_exist_ok=True)
    template = shards[0] / ".work" / "template" / "gradebook.db"
    write_outputs(out, {**first, "shard": [0, 1]}, rows, template)
    return len(rows)
