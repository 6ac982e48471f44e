# One entry point: `make demo` runs the main job, `make test` runs the tests, `make docs`
# builds the documentation site. All create .venv and install everything on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.skft-installed
# Where pip gets torch and torchvision (the same pinned versions either way). Empty: PyPI,
# whose Linux wheels pull the CUDA libraries (a venv of about 6 GB). For a CPU-only build:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (on a fresh .venv: `make clean` first, the install runs once)
TORCH_INDEX ?=

.PHONY: demo demo-text test lint docs docs-check install clean

install: $(STAMP)

$(STAMP): pyproject.toml plugins/skft-timm/pyproject.toml plugins/skft-transformers/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) )torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e ".[test,docs]" -e plugins/skft-timm -e plugins/skft-transformers
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/skft demo

demo-text: $(STAMP)
	$(VENV)/bin/skft demo --text

test: $(STAMP)
	$(PY) -m pytest -q

# The documentation site, offline, warnings as errors: docs/_build/html/index.html.
# The examples are shown, not run (docs/conf.py, sphinx_gallery_conf).
docs: $(STAMP)
	rm -rf docs/generated docs/auto_examples
	$(PY) -m sphinx -b html -E -W --keep-going -q docs docs/_build/html
	@echo "docs: docs/_build/html/index.html"

# The built index and a gallery page opened in headless Chromium (Debian's chromium)
docs-check: docs
	$(PY) docs/check_site.py docs/_build/html

lint: $(STAMP)
	$(VENV)/bin/ruff check skft plugins tests examples benchmarks docs

clean:
	rm -rf $(VENV) skft-demo docs/_build docs/generated docs/auto_examples
