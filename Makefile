# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
RUNTIME := $(VENV)/.runtime

.PHONY: demo test lint bench clean

$(VENV)/bin/python:
	$(PYTHON) -c 'import sys; sys.exit("chat-archiver needs Python 3.11 or newer" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)

# The demo needs the service's own dependencies only. --no-compile: Python compiles the modules
# a run imports as it imports them; compiling every installed file up front cost 40 s here.
$(RUNTIME): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e .
	touch $(RUNTIME)

# Tests, lint and type checks need the dev tools on top.
$(STAMP): pyproject.toml | $(VENV)/bin/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile -e '.[dev]'
	touch $(STAMP) $(RUNTIME)

demo: $(RUNTIME)
	$(BIN)/chat-archiver demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# Two workers: see the pytest-xdist comment in pyproject.toml. `pytest` alone runs serially.
test: lint
	$(BIN)/pytest --numprocesses 2

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -c bench/constraints.txt -e '.[dev,bench]'
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/intake_memory.py
	$(BIN)/python bench/callbacks.py

clean:
	rm -rf $(VENV) archive archiver.db .pytest_cache .mypy_cache .ruff_cache
