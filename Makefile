# Wharf — the two commands: `make run` (the whole service) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
AXE := tests/browser/node_modules/axe-core/axe.min.js

.PHONY: run test lint bench system-deps clean-var api-schema api-client bench-api bench-pulls

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

## run: start web + worker + beat (and embedded Postgres/Redis/S3 where none are configured)
run: $(STAMP)
	$(PY) deploy/run.py

## system-deps: the registry clients the end-to-end tests drive (Debian packages)
system-deps:
	bash deploy/install-system-deps.sh

## test: install everything the tests need, then run the suite against real services
test: $(STAMP) system-deps $(AXE)
	$(PY) -m pytest $(PYTEST_ARGS)

# axe-core for the browser tests' accessibility checks (npm, pinned by tests/browser/package-lock.json)
$(AXE): tests/browser/package.json tests/browser/package-lock.json | system-deps
	npm ci --prefix tests/browser --no-audit --no-fund --silent
	touch $(AXE)

## lint: ruff's rules and formatting, mypy (django-stubs, drf-stubs) and the layer order
##       (import-linter contracts); all configured in pyproject.toml. `ruff format .` fixes formatting.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

## bench: performance figures (see bench/README.md); BENCH_ARGS=--quick for a short smoke run;
##        then GC over 100,000 blobs (GC_BENCH_ARGS="--sizes 10000" for a quick one)
bench: $(STAMP) system-deps
	$(PY) bench/run.py $(BENCH_ARGS)
	$(PY) bench/gc.py $(GC_BENCH_ARGS)

## api-schema: regenerate docs/api/openapi.yaml from the code (tests/api/test_schema.py fails until it is committed);
##             the test settings only so that no database or service configuration is needed
api-schema: $(STAMP)
	DJANGO_SETTINGS_MODULE=gateway.settings.test $(PY) manage.py spectacular --validate --fail-on-warn --file docs/api/openapi.yaml

## api-client: generate a Python client from docs/api/openapi.yaml (openapi-python-client) into API_CLIENT_DIR
##             (default: a new temporary directory; the client is never committed, tests/api/test_generated_client.py builds its own)
api-client: $(STAMP)
	out="$${API_CLIENT_DIR:-$$(mktemp -d)}"; PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/openapi-python-client generate \
		--path docs/api/openapi.yaml --config docs/api/openapi-python-client.yaml --meta none --overwrite --output-path "$$out/wharf_api_client" && echo "client: $$out/wharf_api_client"

## bench-api: admin API list pages over 10,000 repositories and 100,000 tags at 8 connections (bench/README.md);
##            API_BENCH_ARGS="--repositories 1000 --tags 10000" for a quick one
bench-api: $(STAMP) system-deps
	$(PY) bench/api.py $(API_BENCH_ARGS)

## bench-pulls: manifest GETs per second with metering and pull limits off, metering only, and both, in one run (bench/README.md);
##              PULLS_BENCH_ARGS="--rounds 9 --seconds 10" for a steadier one
bench-pulls: $(STAMP) system-deps
	$(PY) bench/pull_limits.py $(PULLS_BENCH_ARGS)

clean-var:
	rm -rf var/
