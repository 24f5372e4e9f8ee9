# furusato: one target for every routine; .ci/run calls the same ones.
#   make run    the whole platform locally (anvil, contracts, web, worker, beat, demo data)
#   make test   every test, on real anvil, PostgreSQL, Redis, Celery and chromium (in parallel)
#   make test-fast  the tests that need no server (no anvil, PostgreSQL, Redis or browser)
SHELL := /bin/bash
PY := .venv/bin/python
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
PO := $(wildcard webui/translations/*/LC_MESSAGES/*.po)
MO := $(PO:.po=.mo)

.PHONY: setup run test test-fast test-deps lint contracts contracts-check migrate-check i18n-extract slither bench-gas bench-chain clean

setup: .venv/.installed node_modules/.installed $(MO)

.venv/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(MO): %.mo: %.po .venv/.installed
	$(PY) -m babel.messages.frontend -q compile -i $< -o $@

run: setup
	$(PY) scripts/run.py

# Browser tests need Debian's chromium (and CJK fonts for readable screenshots).
test-deps:
	@test -x /usr/bin/chromium && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { \
	  echo "installing chromium and fonts-noto-cjk (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

test: setup test-deps
	scripts/test.sh

# No scripts/services.sh: the fast tier starts and reaches no server (tests/conftest.py marks it).
test-fast: setup
	$(PY) -m pytest -m fast -q

lint: setup
	.venv/bin/ruff check backend webui scripts tests bench
	.venv/bin/ruff format --check backend webui scripts tests bench
	.venv/bin/mypy
	$(PY) scripts/check_imports.py
	.venv/bin/lint-imports
	$(PY) scripts/i18n.py check

contracts: setup
	$(PY) scripts/compile_contracts.py

contracts-check: setup
	$(PY) scripts/compile_contracts.py --check

# Slither in its own venv (.venv-slither); fails on any unresolved High/Medium (docs/slither.md).
slither: setup
	bash scripts/slither.sh

# Gas of the hot operations next to plain OZ ERC20/ERC721 on a fresh anvil (docs/benchmarks.md).
bench-gas: setup
	$(PY) -m bench.gas

# Indexer events/s and relayer tx/s next to raw JSON-RPC rates, measured in the same run.
bench-chain: setup
	scripts/services.sh ensure
	$(PY) -m bench.indexer
	$(PY) -m bench.relayer

migrate-check: setup
	scripts/services.sh ensure
	$(PY) scripts/migrate_check.py

# make i18n-extract DOMAIN=points PATHS="backend/points webui/templates/points"
i18n-extract: setup
	$(PY) scripts/i18n.py extract $(DOMAIN) $(PATHS)

clean:
	rm -rf .venv node_modules .solcx test-artifacts
