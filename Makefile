# The two set-up commands are `make demo` and `make test`; both create the virtualenv on first use.
# The demo's venv holds the runtime only; `make test` (and lint, test-fast) add the dev extra to the same venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install --quiet -c constraints.txt
# Ports on 127.0.0.1: the bundled sample portal of `make demo-ui`, the Dagster UI of `make demo-ui` and `make dev`.
SAMPLE_PORT ?= 8311
DAGSTER_PORT ?= 3000
# `make test` runs the tiers side by side: most tests wait on servers, so workers outnumber the cores.
TEST_WORKERS ?= 4
# The tiers `make test-fast` leaves out (pytest markers, declared in pyproject.toml).
SLOW_TIERS := slow or spark or postgres or browser or ui or e2e

.PHONY: install install-dev lint test test-fast prerequisites demo demo-ui dev bench clean

# `dagster dev` warns on every start that `dg dev` supersedes it; dagster-dg is not part of this project.
DAGSTER_DEV := PYTHONWARNINGS='ignore:Function `dev_command` is superseded' $(BIN)/dagster dev -w workspace.yaml

$(VENV)/.runtime: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime
	$(PIP) -e '.[dev]'
	touch $@

install: $(VENV)/.runtime

install-dev: $(VENV)/.dev

# Format, lint, types and the layers of the package (import-linter); `make test` runs them first.
lint: install-dev
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Everything but the tiers that start servers, browsers or Spark: the loop to run while you work.
test-fast: install-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -m "not ($(SLOW_TIERS))"

prerequisites:
	@$(PYTHON) -m boston_lake_tests.prerequisites

# Every tier. The Glue job tests reach moto's S3 from Spark through S3A: its jars come once from PyPI.
test: prerequisites lint
	$(BIN)/python -m boston_lake_tests.support.spark_glue >/dev/null
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

# Offline: serves the bundled sample portal on 127.0.0.1 and materializes every year it offers.
demo: install
	$(BIN)/boston-lake demo --dir .demo

# The Dagster UI over the demo lake, with the sample portal running beside it. Ctrl-C reaches the portal too, so it
# may be gone when the trap runs: that is not worth a "No such process".
demo-ui: install
	@$(BIN)/boston-lake serve-sample-portal --port $(SAMPLE_PORT) & portal=$$!; \
	trap "kill $$portal 2>/dev/null || true" EXIT INT TERM; \
	BOSTON_LAKE_HOME=$(CURDIR)/.demo/lake BOSTON_LAKE_PORTAL_URL=http://127.0.0.1:$(SAMPLE_PORT) \
	DAGSTER_HOME=$(CURDIR)/.demo/dagster_home $(DAGSTER_DEV) -p $(DAGSTER_PORT)

# The Dagster UI against the real portal (or BOSTON_LAKE_PORTAL_URL), with a persistent Dagster home.
dev: install
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(DAGSTER_DEV) -p $(DAGSTER_PORT)

bench: install-dev
	$(PIP) -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_bronze.py --markdown
	$(BIN)/python benchmarks/bench_silver.py --markdown
	$(BIN)/python benchmarks/bench_catalog.py
	$(BIN)/python benchmarks/bench_backfill.py
	$(BIN)/python benchmarks/bench_history.py --markdown

clean:
	rm -rf .demo .boston_lake benchmarks/.work
