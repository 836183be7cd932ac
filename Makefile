# The two commands of the README. Each creates .venv when missing and installs what it needs:
# `make run` only the service (runtime dependencies), `make test` the test tools as well
# (the `dev` extra, and axe-core for the browser tests from tests/package.json).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SUM := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
STAMP_RUN := $(VENV)/.installed-run-$(SUM)
STAMP := $(VENV)/.installed-dev-$(SUM)

.PHONY: run test install install-run clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e .
	rm -f $(VENV)/.installed-run-*
	touch $(STAMP_RUN)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-run-*
	touch $(STAMP) $(STAMP_RUN)

install-run: $(STAMP_RUN)

AXE := tests/node_modules/axe-core/axe.min.js

# axe-core for the browser accessibility tests, from its npm package (tests/package.json).
$(AXE): tests/package.json tests/package-lock.json
	@if command -v npm >/dev/null; then npm --prefix tests ci --no-audit --no-fund --silent \
	 && touch $(AXE); else echo "npm not found: the browser accessibility test will fail" \
	 "(install Node.js/npm)"; fi

install: $(STAMP) $(AXE)

run: install-run
	$(BIN)/proficio demo $(DEMO_ARGS)

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m mypy  # irt/, engine/, calibration/, item_bank/, web/ ([tool.mypy] in pyproject.toml)
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info tests/node_modules
