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
# The exact versions the tests passed with (pyproject.toml keeps the ranges); `make lock` renews it.
PINS := constraints.txt

.PHONY: run test setup lint lock

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(RUN_READY): pyproject.toml $(PINS) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(PINS) -e .
	touch $@

$(TEST_READY): pyproject.toml $(PINS) | $(BIN)/python
	$(BIN)/pip install --quiet -c $(PINS) -e '.[test]'
	touch $@ $(RUN_READY)

# Resolve the newest versions pyproject.toml allows in a clean venv and pin them all; then run
# `make test` before committing the new constraints.txt. torch keeps its pin from pyproject.toml.
lock:
	@tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PY) -m venv "$$tmp" && \
	"$$tmp/bin/pip" install --quiet --upgrade pip && \
	"$$tmp/bin/pip" install --quiet -e '.[test]' && \
	{ echo "# Exact versions the tests pass with, for make and the Dockerfile (pip install -c)."; \
	  echo "# Made by \`make lock\` with $$($$tmp/bin/python -V); do not edit by hand."; \
	  "$$tmp/bin/pip" freeze --all --exclude-editable | grep -v '^pip==' \
	  | sed -E 's/^(torch==[^+]+)\+.*/\1/'; } > $(PINS).new && \
	mv $(PINS).new $(PINS) && echo "$(PINS): $$(grep -vc '^#' $(PINS)) pins"

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
