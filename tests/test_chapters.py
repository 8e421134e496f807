"""Every explanation page executes without error — which asserts its claims, since each claim
is checked by an `assert` in a hidden cell of the page — and every figure has a caption and
alt text."""

import jupytext
import pytest
from jupyter_cache import get_cache
from nbclient import NotebookClient

from conftest import ROOT

PAGES = sorted((ROOT / "chapters").rglob("*.md"))
CACHE = ROOT / "_build" / ".jupyter_cache"


def executed(page):
    """The page as executed: from the book's jupyter-cache when this exact code ran there
    (the cache keeps only runs that finished without error), otherwise executed now."""
    nb = jupytext.read(page)
    if CACHE.exists():
        cache = get_cache(CACHE)
        try:
            record = cache.match_cache_notebook(nb)
        except KeyError:
            pass
        else:
            return cache.get_cache_bundle(record.pk).nb
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(page.parent)}}).execute()
    return nb


@pytest.fixture(scope="module", params=PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def page(request):
    return request.param, executed(request.param)


def test_page_executes_without_errors(page):
    path, nb = page
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.get("output_type") != "error", f"{path.name}: {output.get('ename')}: {output.get('evalue')}"


def test_page_asserts_its_claims(page):
    path, nb = page
    claim_cells = [c for c in nb.cells if c.cell_type == "code" and "remove-cell" in c.metadata.get("tags", [])
                   and "assert " in c.source]
    assert len(claim_cells) >= 3, f"{path.name}: claims should be asserted in remove-cell cells"


def test_every_figure_has_caption_and_alt_text(page):
    path, nb = page
    figures = 0
    for cell in nb.cells:
        if any("image/png" in o.get("data", {}) for o in cell.get("outputs", [])):
            figures += 1
            mystnb = cell.metadata.get("mystnb", {})
            assert mystnb.get("figure", {}).get("caption"), f"{path.name}: a figure has no caption:\n{cell.source[:200]}"
            assert mystnb.get("image", {}).get("alt"), f"{path.name}: a figure has no alt text:\n{cell.source[:200]}"
    assert figures >= 3, f"{path.name}: only {figures} figures"


def test_pages_are_text_notebooks():
    for path in PAGES:
        assert "\n```{code-cell}" in path.read_text(), f"{path.name} is not a MyST-NB text notebook"
