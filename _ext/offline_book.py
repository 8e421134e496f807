"""Sphinx extension: the book reads well offline, opened from its files.

- Formulas render with no network. Jupyter Book loads MathJax from a CDN by default, so a
  reader offline sees raw LaTeX. The `sphinx-mathjax-offline` package (pinned in
  requirements.txt) ships MathJax 3; its files are copied into the built book's
  `_static/mathjax/` and the pages load the SVG build from there. SVG output draws every glyph
  from data inside the script: there are no web fonts, which a browser refuses to load for a
  page opened from a file (file:// has no origin).
- The pages' scripts run without errors: the theme gets a valid default colour mode, and a
  script that the Thebe extension adds twice (a `const` declared twice is a SyntaxError) is
  kept once.

`tests/test_browser.py` checks all of it in a real browser.
"""

import shutil
from importlib.metadata import distribution
from pathlib import Path

MATHJAX_DISTRIBUTION = "sphinx-mathjax-offline"
MATHJAX_PATH = "mathjax/tex-svg-full.js"  # relative to _static/


def mathjax_source() -> Path:
    return Path(distribution(MATHJAX_DISTRIBUTION).locate_file("sphinx-mathjax-offline/static/mathjax"))


def use_local_mathjax(app, config):
    config.mathjax_path = MATHJAX_PATH


def default_colour_mode(app, config):
    # Without one, the theme logs "Got invalid theme mode" on a reader's first visit.
    config.html_context.setdefault("default_mode", "auto")


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    kept, seen = [], set()
    for script in context.get("script_files", []):
        # An inline script is registered with the file name None by one extension, "" by another.
        key = (script.filename or "", script.priority, tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(script)
    # In place: handlers after this one (MathJax's) add their scripts to the same list.
    context["script_files"][:] = kept


def copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    shutil.copytree(mathjax_source(), Path(app.outdir) / "_static" / "mathjax", dirs_exist_ok=True)


def setup(app):
    if not mathjax_source().is_dir():  # fail at the start, not with a book that shows raw LaTeX
        raise RuntimeError(f"MathJax not found: install {MATHJAX_DISTRIBUTION} (requirements.txt)")
    app.connect("config-inited", use_local_mathjax, priority=900)
    app.connect("config-inited", default_colour_mode, priority=900)
    # Early: html-page-context stops at the first handler that returns a template name.
    app.connect("html-page-context", drop_repeated_scripts, priority=100)
    app.connect("build-finished", copy_mathjax)
    # MathJax on every page, also on one without a formula of its own (the bibliography): the
    # browser tests then judge every page alike.
    app.set_html_assets_policy("always")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
