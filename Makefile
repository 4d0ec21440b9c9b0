.PHONY: demo test dev lint bench-ingest

VENV := .venv
PY := $(VENV)/bin/python
UV := $(shell command -v uv 2>/dev/null || echo $(VENV)-uv/bin/uv)

# The venv comes from uv.lock; uv itself is installed with pip when it is missing.
$(VENV)/.synced: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || [ -x $(VENV)-uv/bin/uv ] || \
		(python3 -m venv $(VENV)-uv && $(VENV)-uv/bin/pip install --quiet uv)
	$(UV) sync --frozen --quiet
	@touch $@

demo: $(VENV)/.synced
	$(VENV)/bin/outreach demo

test: $(VENV)/.synced
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q

dev: $(VENV)/.synced
	$(VENV)/bin/outreach dev

lint: $(VENV)/.synced
	$(VENV)/bin/ruff check .

bench-ingest: $(VENV)/.synced
	$(PY) bench/ingest.py
