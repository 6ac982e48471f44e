# One entry point: `make demo` runs the main job, `make test` runs the tests.
# Both create .venv and install everything on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.skft-installed
# Where pip gets torch and torchvision (the same pinned versions either way). Empty: PyPI,
# whose Linux wheels pull the CUDA libraries (a venv of about 6 GB). For a CPU-only build:
#   make test TORCH_INDEX=https://download.pytorch.org/whl/cpu
# (on a fresh .venv: `make clean` first, the install runs once)
TORCH_INDEX ?=

.PHONY: demo demo-text test lint install clean

install: $(STAMP)

$(STAMP): pyproject.toml plugins/skft-timm/pyproject.toml plugins/skft-transformers/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX) )torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -e ".[test]" -e plugins/skft-timm -e plugins/skft-transformers
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/skft demo

demo-text: $(STAMP)
	$(VENV)/bin/skft demo --text

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check skft plugins tests examples benchmarks

clean:
	rm -rf $(VENV) skft-demo
