# Two commands matter: `make demo` and `make test`. Everything else is a helper.
# Only Python 3.11+ and make are needed: uv comes from PyPI into .tools/, the project's
# dependencies from the committed lock file into .venv/.

PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_LINK_MODE := copy
# Compile every installed module once, at install: Python then never compiles Airflow's, dbt's
# and our imports again in each task, dags test, scheduler or test process (some environments set
# PYTHONDONTWRITEBYTECODE, so nothing would be cached otherwise).
export UV_COMPILE_BYTECODE := 1

.PHONY: demo test test-unit test-integration lint format install clean bench reliability

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@

install: $(VENV)/.installed  ## create .venv from the lock file

demo: install  ## local PostgreSQL + 4D simulator + one sync run, then its summary
	$(VENV)/bin/python -m devtools.demo

test: install  ## the whole suite; starts its own PostgreSQL and simulator
	$(VENV)/bin/python -m pytest -m "not isolated" $(PYTEST_ARGS)
	# Memory measurements need a process no earlier test has left threads or caches in.
	$(VENV)/bin/python -m pytest -m isolated $(PYTEST_ARGS)

test-unit: install
	$(VENV)/bin/python -m pytest tests/unit $(PYTEST_ARGS)

test-integration: install  ## real PostgreSQL and the 4D simulator (started by the session)
	$(VENV)/bin/python -m pytest tests/integration $(PYTEST_ARGS)

lint: install  ## ruff (with Airflow's AIR rules), mypy on the runtime package, sqlfluff
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy plugins/legacy_sync
	$(VENV)/bin/sqlfluff lint dbt_project

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

bench: | $(UV)  ## the benchmark (duration and results: bench/README.md; not part of `make test`); BENCH_RECORDS=N
	$(UV) sync --frozen --group bench --python $(PYTHON)
	$(VENV)/bin/python -m bench.run

clean:  ## remove local state (databases, Airflow metadata, logs); keeps .venv
	rm -rf .data dbt_project/target dbt_project/logs

reliability: install  ## every fault case 3 times; table + reliability/results.json
	$(VENV)/bin/python -m reliability.run --runs 3
