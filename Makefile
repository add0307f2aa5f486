# `make run` sets up what running needs and serves the sample; `make test` runs the tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
DATA ?= data
# Stamps of what is installed: running needs the project alone (no torch, no test tools);
# the tests need the test extras. Either order works, each installs what it lacks.
RUN_READY := $(VENV)/.run-ready
TEST_READY := $(VENV)/.test-ready

.PHONY: run test setup lint

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_READY): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(TEST_READY): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(RUN_READY)

setup: $(TEST_READY)

# Align the bundled meeting record, import it into the embedded store, serve API and pages.
run: $(RUN_READY)
	$(BIN)/aligner align aligner/samples/meeting.zh.txt aligner/samples/meeting.en.txt \
		--symbol S/PV.0000 -o tmx_out/meeting.tmx
	$(BIN)/python -m service.load --data $(DATA) tmx_out/meeting.tmx
	@key="$${CONCORDIA_API_KEY:-$$($(BIN)/python -c 'import secrets; print(secrets.token_urlsafe(18))')}"; \
	echo; \
	echo "Concordia: http://$(HOST):$(PORT)/  (search, concordance, memory, reviews; API docs at /docs)"; \
	[ -n "$$CONCORDIA_API_KEY" ] || echo "log in on the pages with the key $$key (writes need it)"; \
	echo; \
	CONCORDIA_API_KEY="$$key" exec $(BIN)/aligner serve --host $(HOST) --port $(PORT) --data $(DATA)

test: $(TEST_READY)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(TEST_READY)
	$(BIN)/ruff check .
