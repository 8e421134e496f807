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


# --- The form of every chapter page: ideas first, plumbing collapsed, one bibliography ---------

import re

CHAPTER_PAGES = sorted((ROOT / "chapters").glob("ch*/*.md"))
BIBFILE = ROOT / "references.bib"
HIDDEN_TAGS = {"hide-input", "remove-input", "remove-cell"}
MAX_CODE_LINE = 99
# {cite}`key`, {cite:t}`a,b`, {cite:p}`{see}key{p. 2}`: the keys, with optional pre/post text.
CITE_ROLE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")
CITE_KEY = re.compile(r"\s*(?:\{[^{}]*\})?\s*([^{}\s,]+)\s*(?:\{[^{}]*\})?\s*")


def page_id(path):
    return path.relative_to(ROOT).as_posix()


def cited_keys(text):
    keys = []
    for targets in CITE_ROLE.findall(text):
        for target in targets.split(","):
            match = CITE_KEY.fullmatch(target)
            assert match, f"malformed citation target {target!r}"
            keys.append(match.group(1))
    return keys


def bib_entries():
    """Each entry of references.bib: key -> the set of its field names."""
    text = BIBFILE.read_text()
    entries = {}
    for match in re.finditer(r"^@(\w+)\{([^,\s]+),(.*?)^\}", text, re.M | re.S):
        fields = set(re.findall(r"^\s*(\w+)\s*=", match.group(3), re.M))
        assert match.group(2) not in entries, f"references.bib: {match.group(2)} appears twice"
        entries[match.group(2)] = (match.group(1).lower(), fields)
    return entries


def section(text, heading):
    """The lines under a '## heading' up to the next heading of level 2 (or the end)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    return match.group(1) if match else None


@pytest.mark.parametrize("path", CHAPTER_PAGES, ids=page_id)
def test_page_opens_with_five_key_takeaways(path):
    text = path.read_text()
    first_code = text.index("\n```{code-cell}")
    opening = text[:first_code]
    blocks = re.findall(r"^:::\{admonition\} Key takeaways\n(.*?)^:::$", opening, re.M | re.S)
    assert len(blocks) == 1, f"{path.name}: no 'Key takeaways' admonition before the first code cell"
    bullets = [line for line in blocks[0].splitlines() if line.startswith("- ")]
    others = [line for line in blocks[0].splitlines()
              if line.strip() and not line.startswith(("- ", "  "))]
    assert len(bullets) == 5 and not others, (
        f"{path.name}: the takeaways should be exactly five bullets, found {len(bullets)} "
        f"(and other lines {others[:2]})")
    assert opening.index(":::{admonition} Key takeaways") > opening.index("\n# "), (
        f"{path.name}: the takeaways come after the title and the opening paragraph")


@pytest.mark.parametrize("path", CHAPTER_PAGES, ids=page_id)
def test_first_code_cell_is_collapsed(path):
    nb = jupytext.read(path)
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    tags = set(first.metadata.get("tags", []))
    assert tags & HIDDEN_TAGS, (
        f"{path.name}: the first code cell (setup) should be tagged hide-input:\n{first.source[:200]}")


@pytest.mark.parametrize("path", CHAPTER_PAGES, ids=page_id)
def test_code_lines_are_at_most_99_characters(path):
    nb = jupytext.read(path)
    long_lines = [line for cell in nb.cells if cell.cell_type == "code"
                  for line in cell.source.splitlines() if len(line) > MAX_CODE_LINE]
    assert not long_lines, (f"{path.name}: {len(long_lines)} code lines longer than "
                            f"{MAX_CODE_LINE} characters, e.g. {long_lines[0]!r}")


@pytest.mark.parametrize("path", CHAPTER_PAGES, ids=page_id)
def test_page_cites_the_bibliography_and_lists_no_references_by_hand(path):
    text = path.read_text()
    assert cited_keys(text), f"{path.name}: cites no entry of references.bib"
    references = section(text, "References")
    if references is not None:
        items = [line for line in references.splitlines() if re.match(r"\s*([-*+]|\d+\.)\s", line)]
        assert not items, f"{path.name}: a hand-written reference list: {items[:2]}"
        assert "{bibliography}" not in references or ":filter:" in references, (
            f"{path.name}: a second unfiltered bibliography would duplicate the entries")


@pytest.mark.parametrize("path", CHAPTER_PAGES, ids=page_id)
def test_every_cited_key_is_in_the_bibliography(path):
    missing = sorted(set(cited_keys(path.read_text())) - set(bib_entries()))
    assert not missing, f"{path.name}: cites keys that references.bib lacks: {missing}"


def test_bibliography_is_complete_and_built():
    entries = bib_entries()
    assert entries, "references.bib has no entries"
    for key, (kind, fields) in entries.items():
        assert {"author", "title"} <= fields, f"{key}: needs an author and a title"
        assert "year" in fields or "url" in fields, f"{key}: needs a year (or, undated, a url)"
        if kind in ("article", "inproceedings", "incollection", "book", "techreport"):
            assert "year" in fields, f"{key}: a publication needs its year"
    cited = {key for path in CHAPTER_PAGES for key in cited_keys(path.read_text())}
    assert not set(entries) - cited, f"entries no chapter cites: {sorted(set(entries) - cited)}"
    page = (ROOT / "bibliography.md").read_text()
    assert page.count("```{bibliography}") == 1, "bibliography.md holds the one bibliography"
    config = (ROOT / "_config.yml").read_text()
    # Jupyter Book loads sphinxcontrib-bibtex only when the top-level key is there.
    assert re.search(r"^bibtex_bibfiles:\n\s+- references\.bib$", config, re.M), config
