# Two commands do all the set-up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install servers run test lint typecheck unit schemas bench clean docs docs-serve

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[runtime,dev]'
	touch $(STAMP)

install: $(STAMP)

QUICKSTART := examples/quickstart

$(QUICKSTART)/data/shop.db: $(QUICKSTART)/data/shop.sql
	$(PYTHON) $(QUICKSTART)/data/make_shop_db.py

## Compile and run the quickstart example on the embedded platform (SQLite catalog + local folder).
run: install $(QUICKSTART)/data/shop.db
	cd $(QUICKSTART) && ../../$(BIN)/floe compile && ../../$(BIN)/floe run && ../../$(BIN)/floe tables

lint: install
	$(BIN)/ruff check src tests bench

typecheck: install
	$(BIN)/mypy

## The database servers the tests start (MariaDB from Debian's packages when missing).
servers:
	bash .ci/servers.sh

unit: install servers
	$(BIN)/pytest -q -n 2

## The docs site (mkdocs-material) into target/site; strict: a broken link or anchor fails it.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

## The docs site on http://127.0.0.1:8000 while you edit.
docs-serve: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

## Lint, type-check, the docs site and the whole test suite (starts its own servers).
test: lint typecheck docs unit

## Regenerate src/floe/schemas/*.json and docs/reference/*.md after changing the models, CLI or errors.
schemas: install
	$(BIN)/python -m floe.compiler.schema_gen
	$(BIN)/python -m floe.reference docs/reference

## Benchmarks (ratios against bare dlt / pyiceberg / ADBC / hand-written Dagster, printed; ~20 min).
bench: install
	$(BIN)/python bench/compile.py
	$(BIN)/python bench/code_location.py
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/cdc.py
	$(BIN)/python bench/cdc_mysql.py
	$(BIN)/python bench/history.py
	$(BIN)/python bench/transforms.py
	$(BIN)/python bench/metrics.py
	$(BIN)/python bench/changes_verify.py
	$(BIN)/python bench/scale.py
	$(BIN)/python bench/python_source.py

clean:
	rm -rf $(VENV) target .floe examples/*/target examples/*/.floe .pytest_cache .mypy_cache .ruff_cache
