# The two commands: `make run` (the whole stack on an embedded NATS) and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml cli/pyproject.toml)
SOURCES := libs/common/src libs/testkit/src cli/src $(wildcard services/*/src)

.PHONY: venv run test lint typecheck unit bench bench-quick clean

$(STAMP): requirements-dev.txt $(PYPROJECTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -U pip
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-dev.txt
	touch $@

venv: $(STAMP)

run: venv
	$(BIN)/flotilla up

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: venv
	$(BIN)/mypy $(SOURCES)

test: lint typecheck
	$(BIN)/pytest

unit: venv
	$(BIN)/pytest tests/unit

bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: venv
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
