# One command sets up and runs the main job; one runs the tests.
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test setup lint

$(BIN)/aligner: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/aligner

setup: $(BIN)/aligner

run: setup
	$(BIN)/aligner align aligner/samples/sample.zh.txt aligner/samples/sample.en.txt \
		-o tmx_out/sample.tmx

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
