# The two commands (see README): `make run` runs ERI, `make test` runs the checks and tests.
# Each creates .venv and installs what it needs on first use, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint typecheck pytest chromium

run: $(VENV)/.installed-run
	$(BIN)/eri up

test: $(VENV)/.installed-dev chromium lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev chromium
	$(BIN)/pytest

# The browser tests (tests/web) drive Debian's chromium; install it only when it is missing
# (CI runs as root). Never `playwright install`: it downloads browsers from elsewhere.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -q && apt-get install -y -q chromium)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-run
