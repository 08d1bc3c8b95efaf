# analytics-core. `make demo` and `make test` work on a fresh machine: they install what they
# need (a virtualenv, the local database engines) and are fast no-ops when it is there.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PGLITE_DIR := devtools/pglite

.PHONY: help install engines demo test lint bench wheel-check clean

help:
	@echo "make demo    migrate a local database, load sample events, maintain, show status"
	@echo "make test    provision the database engines and run the test suite"
	@echo "make lint    ruff and mypy --strict"
	@echo "make bench   benchmarks, written to docs/BENCHMARKS.md"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

# The server engine (PostgreSQL 15 + TimescaleDB Apache edition, built from source) and the
# Community-edition engine (TimescaleDB in PGlite, driven by Node); Debian's Chromium for the
# collector dashboard's browser test.
engines: install
	scripts/server-engine install
	scripts/install-chromium
	cd $(PGLITE_DIR) && { [ -d node_modules ] || npm ci --silent --no-audit --no-fund; }

# Without DATABASE_URL the demo installs (as root) and starts the local server engine itself.
demo: install
	$(BIN)/python scripts/demo.py

test: engines
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check analytics_core
	$(BIN)/mypy --strict analytics_core
	$(BIN)/mypy --strict devtools

# The bench extra (the peers it compares against) goes into the same virtualenv, for the
# benchmark only: nothing else imports it, and `make test` does not install it.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev,bench]'
	touch $@

bench: install $(BENCH_STAMP)
	$(BIN)/python -m benchmarks.run

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache
