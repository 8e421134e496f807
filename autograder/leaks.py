"""Find private text (solutions, hidden tests) in anything about to be published.

A *secret* is a line inside a ``### BEGIN SOLUTION`` or ``### BEGIN HIDDEN TESTS`` region of
a source notebook that is long enough to be distinctive, is not a comment, and does not also
appear in the public part of that notebook. Published files (notebooks, HTML, text) are reduced
to their visible text and searched for every secret.
"""

import html
import json
import re
from pathlib import Path

MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")
_REGIONS = {"BEGIN SOLUTION": "END SOLUTION", "BEGIN HIDDEN TESTS": "END HIDDEN TESTS"}
SOLUTIONS_AND_TESTS = tuple(_REGIONS)
HIDDEN_TESTS_ONLY = ("BEGIN HIDDEN TESTS",)
MIN_SECRET_LENGTH = 24  # shorter lines (torch.manual_seed(1)) are not distinctive


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _split_source(source: str, kinds=SOLUTIONS_AND_TESTS) -> tuple[list[str], list[str], list[str]]:
    """Lines of a cell inside and outside the private regions of the given kinds, and each
    private region as one text (a whole function body)."""
    private, public, regions, end = [], [], [], None
    for line in source.splitlines():
        if end is None:
            start = next((m for m in _REGIONS if m in line), None)
            if start in kinds:
                end = _REGIONS[start]
                regions.append([])
            elif start is None:
                public.append(line)
        elif end in line:
            end = None
        else:
            private.append(line)
            regions[-1].append(line)
    return private, public, ["\n".join(r) for r in regions]


# Lines that are never distinctive: imports, and block headers such as
# ``with torch.no_grad():`` or ``for epoch in range(epochs):``.
_GENERIC = re.compile(r"^(import |from \S+ import |(with|for|if|elif|else|try|except|finally|while)\b.*:$)")


def _cell_sources(path: Path):
    for cell in json.loads(path.read_text())["cells"]:
        source = cell["source"]
        yield "".join(source) if isinstance(source, list) else source


def secrets_of(assignment_dir: Path, kinds=SOLUTIONS_AND_TESTS) -> set[str]:
    """The distinctive private lines of every source notebook in ``assignment_dir``.

    A line that stands in the public part of any notebook of the course (the folder above
    ``assignment_dir``) is not a secret, nor is an import or a bare block header.
    ``kinds=HIDDEN_TESTS_ONLY`` gives the hidden tests alone: what a student's feedback must
    not show (their own solution code it may)."""
    assignment_dir = Path(assignment_dir)
    private = []
    for path in sorted(assignment_dir.glob("*.ipynb")):
        for source in _cell_sources(path):
            lines, _, regions = _split_source(source, kinds)
            # Each line, and each region whole: a body of short lines is distinctive together.
            private += lines + [r for r in regions if "\n" in r]
    public = []
    for path in sorted(assignment_dir.parent.glob("*/*.ipynb")):
        for source in _cell_sources(path):
            public += _split_source(source)[1]
    public_text = _normalize("\n".join(public))
    secrets = set()
    for line in private:
        norm = _normalize(line)
        if (len(norm) >= MIN_SECRET_LENGTH and not norm.startswith("#") and not _GENERIC.match(norm)
                and norm not in public_text):
            secrets.add(norm)
    return secrets


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
