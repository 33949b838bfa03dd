# Two commands on a fresh machine (Python >= 3.10, package registries only):
#   make repro   set up, provision data + weights, run the DVC pipeline (default profile: tiny)
#   make test    set up, provision, run the test suite
VENV ?= .venv
PYTHON ?= python3
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: setup repro test clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

setup: $(VENV)/.installed
	$(BIN)/vqe provision

repro: setup
	$(BIN)/dvc repro

test: setup
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) data/synth
