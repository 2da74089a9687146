# snakeflow: `make run` sets up .venv and runs the pipeline; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
CORES ?= all
BIN := $(VENV)/bin

.PHONY: run test lint bench clean-venv

run: $(VENV)/.installed
	$(BIN)/snakemake --cores $(CORES)

test: $(VENV)/.dev-installed
	$(BIN)/python -m pytest

lint: $(VENV)/.dev-installed
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/snakefmt --check . \
	  && $(BIN)/snakemake --lint

PLUGIN := snakemake-logger-plugin-mlflow
PLUGIN_FILES := $(PLUGIN)/pyproject.toml $(wildcard $(PLUGIN)/snakemake_logger_plugin_mlflow/*.py)

$(VENV)/.installed: requirements.txt $(PLUGIN_FILES)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps ./$(PLUGIN)
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-installed: $(VENV)/.installed requirements-dev.txt requirements-cluster.txt
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $@

bench: $(VENV)/.dev-installed
	$(BIN)/python bench/run.py --markdown BENCHMARKS.md

clean-venv:
	rm -rf $(VENV)
