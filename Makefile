# Backstop: every target installs what is missing (idempotently), then acts.
#   make test     compile and run the whole test suite on anvil
#   make compile  compile the contracts (solc 0.8.28 from npm through tools/solc)
#   make lint     ruff + solhint
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

# The compiler shim and the npm binaries (anvil, solhint) must be visible to Ape and py-solc-x.
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solc
export PATH := $(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

PY_SOURCES := $(wildcard backstop tests scripts)

.PHONY: help install compile test lint clean

help:
	@echo "make test     install what is missing, compile, run all tests on anvil"
	@echo "make compile  install what is missing, compile the contracts"
	@echo "make lint     ruff (Python) and solhint (Solidity)"
	@echo "make clean    remove build outputs (keeps the installs)"

$(PY_STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[dev]'
	@# `source .venv/bin/activate` then gives a shell where `ape` finds the shim and anvil.
	@grep -q SOLCX_BINARY_PATH $(BIN)/activate || printf '\n# backstop\nexport SOLCX_BINARY_PATH="%s"\nexport PATH="%s:$$PATH"\n' \
		"$(SOLCX_BINARY_PATH)" "$(CURDIR)/node_modules/.bin" >> $(BIN)/activate
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	@# `npm ci` refuses this lock (npm omits the other platforms' optional anvil binaries);
	@# `npm install` installs exactly the locked versions and leaves the lock unchanged.
	npm install --no-audit --no-fund --loglevel=error
	@touch $@

install: $(PY_STAMP) $(NPM_STAMP)

compile: install
	ape compile

test: compile lint
	ape test tests/ -p no:cacheprovider

lint: install
	ruff check $(PY_SOURCES)
	ruff format --check $(PY_SOURCES)
	solhint --max-warnings 0 'contracts/**/*.sol'

clean:
	rm -rf .build contracts/.cache reports
