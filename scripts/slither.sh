#!/usr/bin/env bash
# Static analysis of contracts/ with Slither. Exits 1 on any unresolved High or Medium finding.
#
# - Slither lives in its own venv (.venv-slither): slither-analyzer pins web3 < 8 and brings many
#   dependencies that the app venv must not see. Created here when missing.
# - The compiler is npm `solc` 0.8.37 (wasm) behind scripts/solc-frontend.cjs, given to Slither as a
#   path (slither.config.json "solc"), so crytic-compile runs it directly and never consults
#   solc-select (which is installed as a dependency but would try to download a native solc).
# - Settings (paths, severities, fail_on) are in slither.config.json; accepted findings carry an
#   inline `// slither-disable-next-line <detector>` and are explained in docs/slither.md.
# - crytic-compile's directory mode only compiles the *.sol files directly in the directory it is
#   given, so Slither runs once per directory under contracts/ (except contracts/test/).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-slither
SLITHER_VERSION=0.11.6
CONFIG=slither.config.json
FRONTEND=scripts/solc-frontend.cjs

if ! "$VENV/bin/slither" --version 2>/dev/null | grep -qx "$SLITHER_VERSION"; then
  echo "creating $VENV (slither-analyzer==$SLITHER_VERSION)"
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
    "slither-analyzer==$SLITHER_VERSION" "crytic-compile==0.4.2"
fi

test -d node_modules/solc -a -d node_modules/@openzeppelin/contracts || {
  echo "node_modules is missing: run 'make setup' first" >&2
  exit 2
}
test -x "$FRONTEND" || chmod +x "$FRONTEND"
"$FRONTEND" --version | grep -q "Version: 0.8.37" || {
  echo "$FRONTEND does not answer as solc 0.8.37" >&2
  exit 2
}

mapfile -t DIRS < <(find contracts -name '*.sol' -not -path 'contracts/test/*' -printf '%h\n' | sort -u)

status=0
for dir in "${DIRS[@]}"; do
  echo "== slither $dir"
  # Exit codes: 0 clean, 255 findings at or above fail_on (medium), anything else a crash.
  if "$VENV/bin/slither" "$dir" --config-file "$CONFIG"; then
    echo "== $dir: no unresolved High/Medium finding"
  else
    rc=$?
    if [ "$rc" -eq 255 ]; then
      echo "== $dir: unresolved High/Medium findings (see above)" >&2
    else
      echo "== $dir: slither failed (exit $rc)" >&2
    fi
    status=1
  fi
done

if [ "$status" -ne 0 ]; then
  echo "slither: FAILED (fix the finding, or justify it inline and in docs/slither.md)" >&2
  exit 1
fi
echo "slither: OK (no unresolved High or Medium finding in ${DIRS[*]})"
