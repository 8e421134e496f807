"""Find private text (solutions, hidden tests) in anything about to be published.

A *secret* is a line inside a solution or hidden-test region of a source notebook (nbgrader's
delimiters, ``course.PRIVATE_REGIONS``) that is long enough to be distinctive, is not a
comment, and was not already public: not in the public part of its own notebook nor of an
earlier chapter (a data-loading line chapter 0 shows is no secret of chapter 1). Published
files (notebooks, HTML, text) are reduced to their visible text and searched for every secret.

A later chapter may hand out an earlier chapter's solution as given code (the affine layer
inside a batch-norm network). That is declared in ``solutions/reveals.toml``; undeclared, the
lines stay secret and the release refuses to publish the later chapter. Declared reveals are
reported by :func:`deliberate_reveals`, never dropped silently.
"""

import html
import json
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from .course import (BEGIN_HIDDEN_TESTS, BEGIN_SOLUTION, END_HIDDEN_TESTS, PRIVATE_REGIONS, SOLUTIONS,
                     assignments, notebooks, read_source)

MARKERS = tuple(PRIVATE_REGIONS) + tuple(PRIVATE_REGIONS.values())
HIDDEN_TEST_MARKERS = (BEGIN_HIDDEN_TESTS, END_HIDDEN_TESTS)
SOLUTIONS_AND_TESTS = tuple(PRIVATE_REGIONS)
HIDDEN_TESTS_ONLY = (BEGIN_HIDDEN_TESTS,)
MIN_SECRET_LENGTH = 24  # shorter lines (torch.manual_seed(1)) are not distinctive
REVEALS_FILE = "reveals.toml"

# Lines that are never distinctive: imports, and block headers such as
# ``with torch.no_grad():`` or ``for epoch in range(epochs):``.
_GENERIC = re.compile(r"^(import |from \S+ import |(with|for|if|elif|else|try|except|finally|while)\b.*:$)")
_OWNER = re.compile(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)")


def _normalize(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Region:
    kind: str    # the opening delimiter: BEGIN_SOLUTION or BEGIN_HIDDEN_TESTS
    owner: str   # the function or class the region sits in ("" at top level)
    lines: list


def split_source(source: str) -> tuple[list[str], list[Region]]:
    """A cell's public lines, and its private regions."""
    public, regions, end, owner = [], [], None, ""
    for line in source.splitlines():
        if end is None:
            start = next((m for m in PRIVATE_REGIONS if m in line), None)
            if start is None:
                public.append(line)
                found = _OWNER.match(line)
                if found:
                    owner = found.group(1)
            else:
                end = PRIVATE_REGIONS[start]
                regions.append(Region(start, owner, []))
        elif end in line:
            end = None
        else:
            regions[-1].lines.append(line)
    return public, regions


def _parts(assignment: str, root: Path | None) -> tuple[list[str], list[Region]]:
    public, regions = [], []
    for name in notebooks(assignment, root):
        for cell in read_source(assignment, name, root).cells:
            cell_public, cell_regions = split_source(cell.source)
            public += cell_public
            regions += cell_regions
    return public, regions


def declared_reveals(root: Path | None = None) -> list[dict]:
    """The entries of ``solutions/reveals.toml``, checked: each names the chapter that hands
    the code out (``by``), the earlier chapter whose solution it is (``of``) and the solution
    functions or classes (``functions``)."""
    path = (Path(root) if root is not None else SOLUTIONS) / REVEALS_FILE
    if not path.exists():
        return []
    entries = tomllib.loads(path.read_text()).get("reveal", [])
    order = assignments(root)
    for entry in entries:
        by, of, functions = entry.get("by"), entry.get("of"), entry.get("functions")
        if by not in order or of not in order or not functions:
            raise ValueError(f"{path.name}: each [[reveal]] needs by and of (assignment ids) and "
                             f"functions; got {entry}")
        if order.index(of) >= order.index(by):
            raise ValueError(f"{path.name}: {by} cannot reveal {of}, which comes after it")
        owners = {r.owner for r in _parts(of, root)[1] if r.kind == BEGIN_SOLUTION}
        unknown = sorted(set(functions) - owners)
        if unknown:
            raise ValueError(f"{path.name}: {of} has no solution of {unknown}")
    return entries


def deliberate_reveals(root: Path | None = None) -> list[str]:
    """One line per declared reveal, for the release to report."""
    return [f"{e['by']} hands out {e['of']}'s solution of {', '.join(e['functions'])} "
            f"(declared in {REVEALS_FILE})" for e in declared_reveals(root)]


def secrets_of(assignment: str, kinds=SOLUTIONS_AND_TESTS, root: Path | None = None) -> set[str]:
    """The distinctive private lines of an assignment's sources.

    ``kinds=HIDDEN_TESTS_ONLY`` gives the hidden tests alone: what a student's feedback must
    not show (their own solution code it may)."""
    order = assignments(root)
    own_public, regions = _parts(assignment, root)
    earlier_public = [line for a in order[:order.index(assignment)] for line in _parts(a, root)[0]]
    public_text = _normalize("\n".join(own_public + earlier_public))
    revealed = {f for e in declared_reveals(root) if e["of"] == assignment for f in e["functions"]}
    secrets = set()
    for region in regions:
        if region.kind not in kinds or (region.kind == BEGIN_SOLUTION and region.owner in revealed):
            continue
        # Each line, and the region whole: a body of short lines is distinctive together.
        for text in region.lines + (["\n".join(region.lines)] if len(region.lines) > 1 else []):
            norm = _normalize(text)
            if (len(norm) >= MIN_SECRET_LENGTH and not norm.startswith("#") and not _GENERIC.match(norm)
                    and norm not in public_text):
                secrets.add(norm)
    return secrets


def course_secrets(kinds=SOLUTIONS_AND_TESTS, root: Path | None = None) -> dict[str, set[str]]:
    """Every assignment's secrets, by assignment id."""
    return {a: secrets_of(a, kinds, root) for a in assignments(root)}


def visible_text(text: str) -> str:
    """What a reader can see of a published file: notebook JSON is reduced to its cell sources
    and text outputs, HTML to its text; whitespace is folded."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            nb = json.loads(text)
        except ValueError:
            nb = None
        if isinstance(nb, dict) and "cells" in nb:
            parts = []
            for cell in nb["cells"]:
                source = cell.get("source", "")
                parts.append("".join(source) if isinstance(source, list) else source)
                for output in cell.get("outputs", []):
                    parts.append(json.dumps(output))
            text = "\n".join(parts)
    elif "<" in text:
        text = re.sub(r"<[^>]+>", "", text)
        text = html.unescape(text)
    return _normalize(text)


def find_leaks(text: str, secrets: set[str], markers=MARKERS) -> list[str]:
    """The markers and secrets that appear in ``text`` (empty when it is clean)."""
    seen = visible_text(text)
    found = [m for m in markers if m in seen]
    found += sorted(s for s in secrets if s in seen)
    return found
