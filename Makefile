# Backstop: every target installs what is missing (idempotently), then acts.
#   make demo     play scenarios/flash_crash.yaml on a local anvil: summary, JSON report, PNG chart
#   make test     compile and run the whole test suite on anvil
#   make stress SCENARIO=FILE [OUT=DIR] [BACKEND=chain|model]   play any scenario (see docs/scenarios.md)
#   make deploy [NETWORK=ecosystem:network:provider ACCOUNT=alias CONFIG=file]
#   make fuzz-deep [STEPS=N]   the differential fuzz machine on pyrevm for N steps (default 100,000)
#   make mutation              deliberate bugs in a copy of the contracts; every one must be caught
#   make bench                 gas, socialization, keeper and fuzz throughput -> bench/results.json
#   make compile  compile the contracts (solc 0.8.28 from npm through tools/solc)
#   make lint     ruff + solhint + Slither
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed

# The compiler shim and the npm binaries (anvil, solhint) must be visible to Ape and py-solc-x.
# Recipes name the venv's and npm's programs by path: make may look a command up in the PATH it
# started with, where another `python` or `ape` (a pyenv shim, say) can come first.
export SOLCX_BINARY_PATH := $(CURDIR)/tools/solc
export PATH := $(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

PY_SOURCES := $(wildcard backstop tests scripts tools bench)

SCENARIO ?= scenarios/flash_crash.yaml
OUT ?= reports
CONFIG ?= config/local.yaml
STEPS ?= 100000

.PHONY: help install compile test lint demo stress deploy fuzz-deep mutation bench clean

help:
	@echo "make demo     install what is missing, play scenarios/flash_crash.yaml on a local anvil"
	@echo "make test     install what is missing, compile, run all tests on anvil"
	@echo "make stress SCENARIO=FILE [OUT=DIR] [BACKEND=chain|model]  play a stress scenario, write DIR/<name>.json and .png"
	@echo "make deploy [NETWORK=... ACCOUNT=... CONFIG=...]  deploy and verify a suite"
	@echo "make fuzz-deep [STEPS=N]  differential fuzzing on pyrevm (default 100,000 steps)"
	@echo "make mutation  run the CI fuzz profile against deliberately broken contracts"
	@echo "make bench    measure gas, socialization, keeper and fuzz throughput"
	@echo "make compile  install what is missing, compile the contracts"
	@echo "make lint     ruff (Python) and solhint (Solidity)"
	@echo "make clean    remove build outputs (keeps the installs)"

# uv installs the locked set (requirements.lock, every package pinned) in seconds where pip took
# over a minute on a fresh clone (docs/toolchain.md). --compile-bytecode writes the .pyc files pip
# would have: with PYTHONDONTWRITEBYTECODE set (as on these machines), every `ape run` and test
# worker would otherwise recompile Ape and web3 from source at each start.
UV_VERSION := 0.13.10

$(PY_STAMP): pyproject.toml requirements.lock
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --constraint requirements.lock -e '.[dev]'
	@# `source .venv/bin/activate` then gives a shell where `ape` finds the shim and anvil.
	@grep -q SOLCX_BINARY_PATH $(BIN)/activate || printf '\n# backstop\nexport SOLCX_BINARY_PATH="%s"\nexport PATH="%s:$$PATH"\n' \
		"$(SOLCX_BINARY_PATH)" "$(CURDIR)/node_modules/.bin" >> $(BIN)/activate
	@touch $@

$(NPM_STAMP): package.json package-lock.json
	@# The lock records every platform's optional anvil binary, so `npm ci` installs exactly it.
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

install: $(PY_STAMP) $(NPM_STAMP)

compile: install
	$(BIN)/ape compile

# One worker per core, each with its own anvil on a free port (docs/testing.md); worksteal keeps
# both busy when a long test lands late.
TEST_WORKERS ?= auto

test: compile lint
	$(BIN)/ape test tests/ -p no:cacheprovider -n $(TEST_WORKERS) --dist worksteal

lint: install
	$(BIN)/ruff check $(PY_SOURCES)
	$(BIN)/ruff format --check $(PY_SOURCES)
	node_modules/.bin/solhint --max-warnings 0 'contracts/**/*.sol'
	$(BIN)/python tools/slither_check.py

# Ape starts a local anvil for the run and stops it afterwards.
demo: compile
	$(BIN)/ape run stress --scenario scenarios/flash_crash.yaml --out reports

stress: compile
	$(BIN)/ape run stress --scenario $(SCENARIO) --out $(OUT) $(if $(BACKEND),--backend $(BACKEND))

deploy: compile
	$(BIN)/ape run deploy --config $(CONFIG) $(if $(NETWORK),--network $(NETWORK)) $(if $(ACCOUNT),--account $(ACCOUNT))

fuzz-deep: compile
	$(BIN)/python -m tests.fuzz.deep --steps $(STEPS)

mutation: compile
	$(BIN)/python tools/mutation.py

bench: compile
	$(BIN)/python -m bench.run

clean:
	rm -rf .build contracts/.cache reports
