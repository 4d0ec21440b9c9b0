.PHONY: demo test dev lint bench-ingest

VENV := .venv
# uv from PATH, else the one pip installs into this Python (the setup contract).
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)

# The venv comes from uv.lock, installed only when missing or when the lock changed.
# Bytecode is compiled at install: with PYTHONDONTWRITEBYTECODE set (as on CI) every process
# (daemon, run workers, API) would otherwise compile Dagster and the rest from source.
$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || \
		python3 -m pip install --quiet uv
	$(UV) sync --frozen --quiet --compile-bytecode
	@touch $@

# The dbt manifest the Dagster definitions are built from: `dbt parse`, offline, no database
# (outreach_assets.analytics re-parses when a project file is newer than the manifest).
DBT_MANIFEST := dbt_project/target/manifest.json
DBT_FILES := $(shell find dbt_project \( -path dbt_project/target -o -path dbt_project/logs \) \
	-prune -o -type f \( -name '*.sql' -o -name '*.yml' -o -name '*.yaml' -o -name '*.csv' \
	-o -name '*.md' \) -print)

$(DBT_MANIFEST): $(VENV)/.synced $(DBT_FILES)
	$(VENV)/bin/python -m outreach_assets.analytics
	@touch $@

demo: $(VENV)/.synced $(DBT_MANIFEST)
	$(VENV)/bin/outreach demo

test: $(VENV)/.synced $(DBT_MANIFEST)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

dev: $(VENV)/.synced $(DBT_MANIFEST)
	$(VENV)/bin/outreach dev

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .

bench-ingest: $(VENV)/.synced
	$(VENV)/bin/python bench/ingest.py
