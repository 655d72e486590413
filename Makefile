# Two set-up commands on a fresh machine: `make demo` (the main job) and `make test` (the tests).
# Each creates .venv and installs the project when needed.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test ui mlflow-ui docs clean-data

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,deploy]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m landslide_pipeline.demo

# Lint and type check first (ruff and mypy, configured in pyproject.toml); pytest exits 5 when it
# collects no test: report it loudly rather than pass silently.
test: $(STAMP)
	$(BIN)/ruff check landslide_pipeline landslide_pipeline_tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest landslide_pipeline_tests; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The configuration reference is generated from the code (a test checks it is current).
docs: $(STAMP)
	$(BIN)/python -m landslide_pipeline.defs.configuration

ui: $(STAMP)
	mkdir -p .dagster && test -f .dagster/dagster.yaml || cp configs/dagster.yaml .dagster/dagster.yaml
	DAGSTER_HOME=$(CURDIR)/.dagster $(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

mlflow-ui: $(STAMP)
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlruns/mlflow.db --default-artifact-root mlruns/artifacts -h 127.0.0.1 -p 5000

# Every generated output (the layout's list), the demo's surveys, the MLflow store and the Dagster
# instance; surveys of your own in data/raw stay.
clean-data: $(STAMP)
	$(BIN)/landslide clean
