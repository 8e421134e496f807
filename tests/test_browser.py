"""The built book in a real browser, offline, as a reader of a downloaded copy sees it.

Debian's headless Chromium (driven through chromedriver) opens every page of the table of
contents from ``_build/html`` by ``file://`` URLs, with name resolution switched off so that
nothing can come from the network. On every page: every formula is typeset by MathJax (none
left as LaTeX, no raw ``\\(`` or ``$$`` in the text, no MathJax error), every image has loaded,
and the book's own files log no error. Internal links point at files and anchors that exist;
the search page finds "Xavier". One screenshot per chapter page goes to ``_build/screenshots/``
for review.

Chromium and chromedriver come from Debian's packages (``chromium``, ``chromium-driver``), which
``make`` installs when it runs as root; elsewhere these tests skip and say how to install them.
"""

import shutil
import tempfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from conftest import ROOT

BUILD = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
MATHJAX_TIMEOUT_MS = 15000

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="needs Debian's chromium and chromium-driver: `apt-get install chromium chromium-driver` "
           "(make installs them when it runs as root)")


def toc_pages() -> list[str]:
    """Every page of the table of contents, as a path under ``_build/html``."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]

    def walk(entries):
        for entry in entries:
            files.append(entry["file"])
            walk(entry.get("sections", []))

    for part in toc.get("parts", []):
        walk(part["chapters"])
    return [f"{name}.html" for name in files]


PAGES = toc_pages()
CHAPTER_PAGES = [p for p in PAGES if p.startswith("chapters/")]

# Runs in the page once MathJax has finished: what the tests below judge.
INSPECT_PAGE = r"""
const inCode = node => node.parentElement && node.parentElement.closest(
    'pre, code, script, style, .highlight, mjx-container, .cell_output');
const raw = [];
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const text = node.textContent;
    if (!inCode(node) && /\\\(|\\\)|\\\[|\$\$/.test(text)) raw.push(text.trim().slice(0, 80));
}
const formulas = Array.from(document.querySelectorAll('span.math, div.math'));
return {
    formulas: formulas.length,
    untypeset: formulas.filter(f => !f.querySelector('mjx-container')).map(f => f.textContent.slice(0, 80)),
    errors: Array.from(document.querySelectorAll('mjx-merror')).map(e => e.getAttribute('data-mjx-error')),
    raw: raw,
    brokenImages: Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0))
                       .map(i => i.getAttribute('src')),
    images: document.images.length,
};
"""

WAIT_FOR_MATHJAX = """
const done = arguments[arguments.length - 1];
const started = Date.now();
(function poll() {
    if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
        MathJax.startup.promise.then(() => done('typeset'), e => done('MathJax failed: ' + e));
    } else if (Date.now() - started > %d) { done('MathJax did not start'); }
    else { setTimeout(poll, 50); }
})();
""" % MATHJAX_TIMEOUT_MS


@pytest.fixture(scope="module")
def browser():
    if not (BUILD / "intro.html").exists():
        pytest.fail("the book is not built: run `make book` (make test does it first)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="tnn-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1000", f"--user-data-dir={profile}",
                 # Offline: no host name resolves, so a page that needs a CDN shows it here.
                 "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(MATHJAX_TIMEOUT_MS / 1000 + 10)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def seen(browser):
    """Each page of the table of contents, opened once: what the page showed and logged."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    pages = {}
    for page in PAGES:
        browser.get((BUILD / page).as_uri())
        status = browser.execute_async_script(WAIT_FOR_MATHJAX)
        info = browser.execute_script(INSPECT_PAGE)
        info["status"] = status
        info["log"] = browser.get_log("browser")
        if page in CHAPTER_PAGES:
            shot = SCREENSHOTS / f"{Path(page).stem}.png"
            browser.save_screenshot(str(shot))
            info["screenshot"] = shot
        pages[page] = info
    return pages


@pytest.mark.parametrize("page", PAGES)
def test_formulas_are_typeset_offline(seen, page):
    info = seen[page]
    assert info["status"] == "typeset", f"{page}: {info['status']} (is MathJax loaded from the network?)"
    assert not info["untypeset"], f"{page}: formulas left as LaTeX: {info['untypeset'][:3]}"
    assert not info["raw"], f"{page}: LaTeX left in the text: {info['raw'][:3]}"
    assert not info["errors"], f"{page}: MathJax could not typeset: {info['errors'][:3]}"


def test_the_chapters_have_formulas_to_typeset(seen):
    """The check above means something: the chapter pages do hold formulas."""
    for page in CHAPTER_PAGES:
        assert seen[page]["formulas"] >= 5, f"{page}: only {seen[page]['formulas']} formulas found"


@pytest.mark.parametrize("page", PAGES)
def test_every_image_loads(seen, page):
    assert not seen[page]["brokenImages"], f"{page}: images that did not load: {seen[page]['brokenImages']}"


def test_the_chapters_show_their_figures(seen):
    for page in CHAPTER_PAGES:
        assert seen[page]["images"] >= 1, f"{page}: no figure"


@pytest.mark.parametrize("page", PAGES)
def test_no_script_error_from_the_book(seen, page):
    own = BUILD.as_uri()
    errors = [entry["message"] for entry in seen[page]["log"]
              if entry["level"] == "SEVERE" and own in entry["message"]]
    assert not errors, f"{page}: the book's own files logged errors: {errors[:3]}"


def test_search_finds_xavier(browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((BUILD / "search.html").as_uri() + "?q=Xavier")
    results = WebDriverWait(browser, 30).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#search-results li a") or None)
    targets = [a.get_attribute("href") for a in results]
    assert any("ch3_initialization" in href for href in targets), \
        f"searching 'Xavier' does not find chapter 3: {targets[:5]}"


def test_one_screenshot_per_chapter(seen):
    for page in CHAPTER_PAGES:
        shot = seen[page]["screenshot"]
        assert shot.exists() and shot.stat().st_size > 10_000, f"{page}: no usable screenshot at {shot}"


class _Anchors(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.links = set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def _parse(path: Path) -> _Anchors:
    parser = _Anchors()
    parser.feed(path.read_text(errors="replace"))
    return parser


@pytest.mark.parametrize("page", PAGES)
def test_internal_links_resolve(page):
    if not (BUILD / page).exists():
        pytest.fail(f"{page} is not built: run `make book`")
    source = BUILD / page
    broken = []
    parsed = {}
    for href in _parse(source).links:
        parts = urlsplit(href)
        if parts.scheme or href.startswith(("//", "mailto:", "javascript:")):
            continue
        target = (source.parent / unquote(parts.path)).resolve() if parts.path else source
        if target.is_dir():
            target = target / "index.html"
        if not target.exists():
            broken.append(href)
            continue
        if parts.fragment and target.suffix == ".html":
            ids = parsed.setdefault(target, _parse(target).ids)
            if unquote(parts.fragment) not in ids:
                broken.append(href)
    assert not broken, f"{page}: broken internal links: {broken[:5]}"
