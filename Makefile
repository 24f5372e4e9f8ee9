# furusato: every routine has one target here; .ci/run calls the same ones.
SHELL := /bin/bash
PY := .venv/bin/python
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx

.PHONY: setup contracts contracts-check
setup: .venv/.installed node_modules/.installed

.venv/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

contracts: setup
	$(PY) scripts/compile_contracts.py

contracts-check: setup
	$(PY) scripts/compile_contracts.py --check
