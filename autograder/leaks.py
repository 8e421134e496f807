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
MIN_SECRET_LENGTH = 20


def _normalize(text: str) -> str:
    return " ".join(text.split())


def _split_source(source: str, kinds=SOLUTIONS_AND_TESTS) -> tuple[list[str], list[str]]:
    """Lines of a cell inside and outside the private regions of the given kinds."""
    private, public, end = [], [], None
    for line in source.splitlines():
        if end is None:
            start = next((m for m in _REGIONS if m in line), None)
            if start in kinds:
                end = _REGIONS[start]
            elif start is None:
                public.append(line)
        elif end in line:
            end = None
        else:
            private.append(line)
    return private, public


def secrets_of(assignment_dir: Path, kinds=SOLUTIONS_AND_TESTS) -> set[str]:
    """The distinctive private lines of every source notebook in ``assignment_dir``.

    ``kinds=HIDDEN_TESTS_ONLY`` gives the hidden tests alone: what a student's feedback must
    not show (their own solution code it may)."""
    private, public = [], []
    for path in sorted(Path(assignment_dir).glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            inside, outside = _split_source(source, kinds)
            private += inside
            public += outside
    public_text = _normalize("\n".join(public))
    secrets = set()
    for line in private:
        norm = _normalize(line)
        if len(norm) >= MIN_SECRET_LENGTH and not norm.startswith("#") and norm not in public_text:
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
