# furusato: one target for every routine; .ci/run calls the same ones.
#   make run    the whole platform locally (anvil, contracts, web, worker, beat, demo data)
#   make test   every test, on real anvil, PostgreSQL, Redis, Celery and chromium (in parallel)
#   make test-fast  the tests that need no server (no anvil, PostgreSQL, Redis or browser)
SHELL := /bin/bash
PY := .venv/bin/python
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
PO := $(wildcard webui/translations/*/LC_MESSAGES/*.po)
MO := $(PO:.po=.mo)

.PHONY: setup run test test-fast test-deps lint contracts contracts-check migrate-check i18n-extract slither bench-gas bench-chain bench-peer bench-rush bench-pages bench-web bench-confirm clean

# Browser libraries are installed by npm ci and served from the app, never from a CDN: setup
# copies each built file from node_modules into webui/static/vendor/ (untracked, like the .mo).
VENDOR := webui/static/vendor/zxing-browser.min.js

setup: .venv/.installed node_modules/.installed $(MO) $(VENDOR)

.venv/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

webui/static/vendor/zxing-browser.min.js: node_modules/.installed
	mkdir -p $(@D)
	cp node_modules/@zxing/browser/umd/zxing-browser.min.js $@

$(MO): %.mo: %.po .venv/.installed
	$(PY) -m babel.messages.frontend -q compile -i $< -o $@

run: setup
	$(PY) scripts/run.py

# Browser tests need Debian's chromium (and CJK fonts for readable screenshots). Its headless
# shell is lighter for the pages (tests/pages.py::chromium_for_pages) but optional: where it
# cannot be installed the tests use chromium.
test-deps:
	@test -x /usr/bin/chromium && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { \
	  echo "installing chromium and fonts-noto-cjk (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }
	@test -x /usr/bin/chromium-headless-shell || { \
	  echo "installing chromium-headless-shell (Debian)"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    chromium-headless-shell; } >/dev/null 2>&1 || echo "no chromium-headless-shell: the browser tests use chromium"; }

test: setup test-deps
	scripts/test.sh

# No scripts/services.sh: the fast tier starts and reaches no server (tests/conftest.py marks it).
test-fast: setup
	env -u PYTHONDONTWRITEBYTECODE PYTHONPYCACHEPREFIX=$(CURDIR)/.pycache PYTHONNODEBUGRANGES=1 $(PY) -m pytest -m fast -q

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

# Indexer events/s and relayer tx/s next to raw JSON-RPC rates, measured in the same run, and
# the indexer next to a peer on 20,000 events (bench-peer: 100,000).
bench-chain: setup
	scripts/services.sh ensure
	$(PY) -m bench.indexer
	$(PY) -m bench.relayer
	$(PY) -m bench.peer --blocks 40

# Our indexer and Subsquid's (npm ci into bench/peer/subsquid on first run) on the same 100,000
# ERC-20 Transfers from one anvil: events/s and the ratio, then reorgs of depth 1-10.
bench-peer: setup
	scripts/services.sh ensure
	$(PY) -m bench.peer

# A sale rush: 300 buyers in 60 s at a listing of 200, on 1 web + 1 worker and on 2 + 2
# (PostgreSQL, a private Redis, anvil with 1-s blocks; docs/benchmarks.md).
bench-rush: setup
	scripts/services.sh ensure
	$(PY) -m bench.rush

# Pages under load (bench/web.py): its own anvil, gunicorn with 2 workers as `make run`, the demo
# towns with activity; each page next to a static file, on SQLite and then on PostgreSQL.
bench-pages: setup
	scripts/services.sh ensure
	$(PY) -m bench.web
	$(PY) -m bench.web --db postgresql

# Every figure of issue 16 in one run, each with its baseline and ratio: pages next to a static
# file, confirmation with the block watcher next to beat only, the sale rush on 1+1 and 2+2
# processes, our indexer next to Subsquid (about 45 minutes; each target also runs alone).
bench-web: bench-pages bench-confirm bench-rush bench-peer

# Click -> pending and click -> paid / owned, with the block watcher and without (beat only), on
# make run's stack; then on PostgreSQL + Redis with 1 web + 1 worker against 2 + 2.
bench-confirm: setup
	scripts/services.sh ensure
	$(PY) -m bench.confirm
	$(PY) -m bench.confirm --db postgres --broker redis --scale

migrate-check: setup
	scripts/services.sh ensure
	$(PY) scripts/migrate_check.py

# make i18n-extract DOMAIN=points PATHS="backend/points webui/templates/points"
i18n-extract: setup
	$(PY) scripts/i18n.py extract $(DOMAIN) $(PATHS)

clean:
	rm -rf .venv node_modules .solcx test-artifacts webui/static/vendor
