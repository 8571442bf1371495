# `make demo`, `make test` and `make bench` each set up .venv themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.dev-installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[dev,bench]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/prefect-mlops demo

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/lint-imports

typecheck: $(VENV)/.dev-installed
	$(BIN)/mypy

unit: $(VENV)/.dev-installed
	$(BIN)/pytest

test: lint typecheck unit

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/bench_tracking.py
	$(BIN)/python bench/bench_search.py
	$(BIN)/python bench/bench_plugin.py
	$(BIN)/python bench/bench_telemetry.py
	$(BIN)/python bench/bench_autolog.py
	$(BIN)/python bench/bench_server.py
	$(BIN)/python bench/bench_outage.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
