#!/usr/bin/env bash
# Run every test with PostgreSQL and Redis reachable; stop whatever this script had to start.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh ensure
trap 'scripts/services.sh stop' EXIT
.venv/bin/python -m pytest "$@"
