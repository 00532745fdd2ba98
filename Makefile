# The two commands a new user needs: `make demo` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit sanitize bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The demo needs looseends itself (and psutil); the tests, linters and live checks need the rest.
$(VENV)/.installed-core: pyproject.toml setup.py src/looseends/sources/_speedups.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed: $(VENV)/.installed-core
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(VENV)/.installed-core
	$(BIN)/python examples/demo.py

lint: $(VENV)/.installed
	$(BIN)/ruff check src tests examples bench
	$(BIN)/ruff format --check src tests examples bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy --strict src

# One worker per core (pytest-xdist): the suite is written for it, and CI runs it so.
unit: $(VENV)/.installed
	$(BIN)/python -m pytest -n auto

test: lint typecheck unit

# Not part of `make test`: the C accelerator under ASan and UBSan, and its line coverage (CI runs it).
sanitize: $(VENV)/.installed
	bash .ci/sanitize $(BIN)/python

# Not part of `make test`: regenerates BENCHMARKS.md (a few minutes on 2 cores).
bench: $(VENV)/.installed
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) build dist src/*.egg-info .mypy_cache .ruff_cache .pytest_cache
