# The two set-up commands are `make demo` and `make test`; both create the virtualenv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Ports on 127.0.0.1: the bundled sample portal of `make demo-ui`, the Dagster UI of `make demo-ui` and `make dev`.
SAMPLE_PORT ?= 8311
DAGSTER_PORT ?= 3000

.PHONY: install lint test demo demo-ui dev bench clean

# `dagster dev` warns on every start that `dg dev` supersedes it; dagster-dg is not part of this project.
DAGSTER_DEV := PYTHONWARNINGS='ignore:Function `dev_command` is superseded' $(BIN)/dagster dev -w workspace.yaml

$(VENV)/.installed: pyproject.toml setup.py constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Format, lint and type checks; every branch keeps them clean (`make test` runs them first).
lint: install
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

# The Glue job tests reach moto's S3 from Spark through S3A: its jars come once from PyPI (support/spark_glue.py).
test: lint
	$(BIN)/python -m boston_lake_tests.support.spark_glue >/dev/null
	$(BIN)/python -m pytest

# Offline: serves the bundled sample portal on 127.0.0.1 and materializes every year it offers.
demo: install
	$(BIN)/boston-lake demo --dir .demo

# The Dagster UI over the demo lake, with the sample portal running beside it.
demo-ui: install
	@$(BIN)/boston-lake serve-sample-portal --port $(SAMPLE_PORT) & portal=$$!; trap "kill $$portal" EXIT INT TERM; \
	BOSTON_LAKE_HOME=$(CURDIR)/.demo/lake BOSTON_LAKE_PORTAL_URL=http://127.0.0.1:$(SAMPLE_PORT) \
	DAGSTER_HOME=$(CURDIR)/.demo/dagster_home $(DAGSTER_DEV) -p $(DAGSTER_PORT)

# The Dagster UI against the real portal (or BOSTON_LAKE_PORTAL_URL), with a persistent Dagster home.
dev: install
	DAGSTER_HOME=$(CURDIR)/.dagster_home $(DAGSTER_DEV) -p $(DAGSTER_PORT)

bench: install
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python benchmarks/bench_bronze.py --markdown
	$(BIN)/python benchmarks/bench_silver.py --markdown
	$(BIN)/python benchmarks/bench_catalog.py
	$(BIN)/python benchmarks/bench_backfill.py

clean:
	rm -rf .demo .boston_lake benchmarks/.work
