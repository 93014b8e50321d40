# kpiwatch — two commands for a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DATA   ?= demo-data
export DAGSTER_HOME ?= $(CURDIR)/warehouse/dagster_home

.PHONY: run test test-clock test-fast demo validate status dev clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

## run: bootstrap the environment, write the demo data, run the whole pipeline; the summary
## ends with where the scorecard and the audit report are
run: $(STAMP)
	$(BIN)/kpiwatch demo --data-dir $(DATA)
	$(BIN)/kpiwatch run --data-dir $(DATA)

## test: bootstrap the environment and run the whole test suite
test: $(STAMP)
	$(BIN)/python -m pytest -q

## test-clock: the time-sensitive tests again with the clock moved a year ahead (Debian's faketime):
## every fast test and the slow ones marked `clock` (they compare what runs stored with dates and
## times), so a test that depends on the day it runs fails today, not next month (CI runs it after
## `make test`). CLOCK_TESTS="" runs the whole suite so.
CLOCK_SHIFT ?= +365d
CLOCK_TESTS ?= -m "not slow or clock"
test-clock: $(STAMP)
	@command -v faketime >/dev/null || { echo "make test-clock needs faketime (apt-get install faketime)" >&2; exit 2; }
	faketime -f '$(CLOCK_SHIFT)' $(BIN)/python -m pytest -q $(CLOCK_TESTS)

## test-fast: unit tests only
test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

demo: $(STAMP)
	$(BIN)/kpiwatch demo --data-dir $(DATA)

validate: $(STAMP)
	$(BIN)/kpiwatch validate

status: $(STAMP)
	$(BIN)/kpiwatch status

## dev: open the Dagster UI (http://127.0.0.1:3000) on the demo data
dev: $(STAMP)
	mkdir -p $(DAGSTER_HOME)
	$(BIN)/python -c "from pipelines.transform.project import prepare_manifest; prepare_manifest()"
	KPIWATCH_DATA_DIR=$(CURDIR)/$(DATA) $(BIN)/dagster dev -w workspace.yaml

clean:
	rm -rf warehouse demo-data dbt_project/target dbt_project/logs

## bench: the scale benchmark at 1M and 10M observations against the DuckDB SQL yardstick (docs/scale.md)
.PHONY: bench
BENCH_SIZES ?= 1m,10m
bench: $(STAMP)
	$(BIN)/kpiwatch bench run --observations $(BENCH_SIZES)
