# furusato: one target for every routine; .ci/run calls the same ones.
#   make run    the whole platform locally (anvil, contracts, web, worker, beat, demo data)
#   make test   every test, on real anvil, PostgreSQL, Redis, Celery and chromium
SHELL := /bin/bash
PY := .venv/bin/python
export SOLCX_BINARY_PATH := $(CURDIR)/.solcx
MO := webui/translations/ja/LC_MESSAGES/messages.mo webui/translations/en/LC_MESSAGES/messages.mo

.PHONY: setup run test test-deps lint contracts contracts-check migrate-check i18n-extract clean

setup: .venv/.installed node_modules/.installed $(MO)

.venv/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv .venv
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

webui/translations/%/LC_MESSAGES/messages.mo: webui/translations/%/LC_MESSAGES/messages.po .venv/.installed
	$(PY) -m babel.messages.frontend compile -d webui/translations -l $* >/dev/null

run: setup
	$(PY) scripts/run.py

# Browser tests need Debian's chromium (and CJK fonts for readable screenshots).
test-deps:
	@test -x /usr/bin/chromium && fc-list 2>/dev/null | grep -qi "Noto Sans CJK" || { \
	  echo "installing chromium and fonts-noto-cjk (Debian)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

test: setup test-deps
	scripts/test.sh

lint: setup
	.venv/bin/ruff check backend webui scripts tests bench
	.venv/bin/ruff format --check backend webui scripts tests bench
	.venv/bin/mypy
	$(PY) scripts/check_imports.py

contracts: setup
	$(PY) scripts/compile_contracts.py

contracts-check: setup
	$(PY) scripts/compile_contracts.py --check

migrate-check: setup
	scripts/services.sh ensure
	$(PY) scripts/migrate_check.py

i18n-extract: setup
	.venv/bin/pybabel extract -F babel.cfg -k _l --no-location --sort-output --omit-header \
	  -o webui/translations/messages.pot backend webui
	.venv/bin/pybabel update -i webui/translations/messages.pot -d webui/translations \
	  --no-fuzzy-matching --omit-header

clean:
	rm -rf .venv node_modules .solcx test-artifacts
