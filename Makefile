# `make demo` and `make test` each create the virtual environment they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

$(BIN)/perfsim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

.PHONY: demo test lint docs bench
demo: $(BIN)/perfsim
	$(BIN)/perfsim hardware list

test: $(BIN)/perfsim
	$(BIN)/ruff check perfsim tests
	$(BIN)/python -m pytest
	$(BIN)/mkdocs build --strict --quiet --site-dir build/site

bench: $(BIN)/perfsim
	$(BIN)/python -m pytest tests/benchmarks --benchmark-enable -p no:randomly
