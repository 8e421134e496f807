"""Sphinx extension: page sources published for download carry no pen-and-paper solutions.

The book offers each page's source for download (the student notebook on an exercise page,
the MyST text on an explanation page). ``hide_solutions`` keeps sphinx-exercise solutions out
of the HTML; this removes the ``{solution}`` blocks from the copied sources as well.
"""

import re
from pathlib import Path

SOLUTION_BLOCK = re.compile(r"^(?P<fence>`{3,}|:{3,})\{solution\}.*?^(?P=fence)[ \t]*$\n?", re.M | re.S)


def strip_solutions(app, exception):
    if exception is not None or not app.config.hide_solutions:
        return
    for path in (Path(app.outdir) / "_sources").rglob("*"):
        if path.suffix in (".md", ".txt") and path.is_file():
            text = path.read_text()
            stripped = SOLUTION_BLOCK.sub("", text)
            if stripped != text:
                path.write_text(stripped)


def setup(app):
    app.connect("build-finished", strip_solutions)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
