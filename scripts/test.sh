#!/usr/bin/env bash
# Run tests with PostgreSQL and Redis reachable; stop whatever this script had to start.
#   scripts/test.sh                     every test, in parallel (pytest-xdist, TEST_WORKERS=4)
#   scripts/test.sh tests/points -x -q  only what the arguments say, in one process (add -n 3
#                                       to spread it over workers)
set -euo pipefail
cd "$(dirname "$0")/.."
# Keep compiled modules between runs, in .pycache/ (untracked), even where the environment says
# not to write them (PYTHONDONTWRITEBYTECODE, set on these machines): otherwise each of the five
# pytest processes re-parses and re-compiles every test module for its assertion rewriting, and
# every process a test starts re-compiles backend/ (measured: collection 12.1 s -> 5.7 s of CPU).
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$PWD/.pycache}"
# No column tables in code objects, so no traceback formatting calls ast.parse: on CPython 3.11
# a traceback formatted in a finalizer during another ast.parse (pytest's unraisable-exception
# hook, hypothesis parsing a lambda) broke that parse with "AST constructor recursion depth
# mismatch" (tests/unit/test_ast_reentry.py). Tracebacks lose only their ^^^ marks.
export PYTHONNODEBUGRANGES=1
# Each run's anvils log to test-artifacts/anvil-<run>.log (a few MB a run); logs of runs older
# than a day go, so a machine that runs the suite all day does not fill up with them.
find test-artifacts -maxdepth 1 -name 'anvil-*.log' -mmin +1440 -delete 2>/dev/null || true
scripts/services.sh ensure
trap 'scripts/services.sh stop' EXIT
if [ $# -eq 0 ]; then
  # Every worker has its own anvil, databases, Celery queue and temp dir (tests/conftest.py);
  # loadgroup keeps the tests of one xdist_group on one worker.
  set -- -n "${TEST_WORKERS:-4}" --dist loadgroup --durations=30
fi
.venv/bin/python -m pytest "$@"
