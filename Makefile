# Two commands for a fresh machine: `make book` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Re-installs only when the pinned requirements or the package metadata change.
STAMP := $(VENV)/.installed
SOURCES := $(wildcard solutions/*/*.py solutions/*.toml)
PAGES := $(wildcard chapters/*/*.md) intro.md _config.yml _toc.yml

.PHONY: book test release bench clean

$(STAMP): requirements.txt pyproject.toml
	@# The grader runs student code in a bubblewrap sandbox (bwrap, setpriv and prlimit).
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  (apt-get update -qq && apt-get install -y -qq bubblewrap util-linux >/dev/null); } || \
	  echo "warning: bubblewrap is not installed; grading will need it (see README)"
	@# The browser tests of the built book drive Debian's headless Chromium (tests/test_browser.py).
	@{ command -v chromium && command -v chromedriver; } >/dev/null || { [ "$$(id -u)" = 0 ] && \
	  command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null); } || \
	  echo "warning: chromium is not installed; the browser tests of the book will be skipped (see README)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch==2.13.0 is pinned in requirements.txt: the CPU wheel, not the CUDA stack.
	$(BIN)/python -m pip install --quiet -r requirements.txt
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

# Student notebooks: release/ (handed out) and exercises/ (shown in the book).
release/.stamp: $(STAMP) $(SOURCES) $(wildcard autograder/*.py nnkit/*.py)
	$(BIN)/python -m autograder release --out release --book exercises
	touch $@

release: release/.stamp

book: release/.stamp $(PAGES)
	$(BIN)/jupyter-book build . --warningiserror --nitpick --keep-going

test: book
	$(BIN)/python -m pytest

bench: book
	$(BIN)/python benchmarks/pipeline.py
	$(BIN)/python benchmarks/training_loop.py

clean:
	rm -rf _build release exercises .jupyter_cache
