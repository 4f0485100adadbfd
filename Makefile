# The two commands: `make run` (the whole stack on an embedded NATS) and `make test`.
# Each first installs what it needs: the Debian packages of tools/debian-packages (tools/setup;
# a few milliseconds when they are all there), then .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYPROJECTS := $(wildcard libs/*/pyproject.toml services/*/pyproject.toml cli/pyproject.toml)
SOURCES := libs/common/src libs/metadata/src libs/testkit/src cli/src $(wildcard services/*/src)

.PHONY: setup venv run test lint typecheck unit bench bench-quick clean

# Which packages tools/setup checks: `make run` (and venv, lint, unit...) needs the "run" ones;
# `make test` and the benchmarks need them all. A target's value holds for its prerequisites,
# so `make test` reaches setup through lint -> venv with SETUP_FOR=test: one check, run first.
SETUP_FOR := run
test bench bench-quick: SETUP_FOR := test

setup:
	@tools/setup $(SETUP_FOR)

$(STAMP): requirements-dev.txt $(PYPROJECTS) | setup
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

# Then the tiers that run in this process once more in asyncio's debug mode, where a callback
# that holds the event loop over 50 ms fails its test (flotilla.testkit.asyncio_debug); the
# floods of `load` tests, and the `slow` ones, are left out of that step.
DEBUG_TIERS := tests/unit tests/common tests/contract tests/integration tests/records \
	tests/images tests/remotes tests/archive

test: lint typecheck
	$(BIN)/pytest
	PYTHONASYNCIODEBUG=1 $(BIN)/pytest -q -m "not load and not slow" $(DEBUG_TIERS)

unit: venv
	$(BIN)/pytest tests/unit

bench: venv
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: venv
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
