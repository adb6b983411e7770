#!/usr/bin/env bash
# Run the test suite against the local stack (deploy/stack.sh):
#   deploy/test.sh [pytest args...]
# Installs the workspace, brings the stack up, runs pytest with deploy/local.env (or
# $TPP_STACK_ENV) in the environment, and stops the stack again only if this script started it
# (a stack another checkout started on the same ports counts as running: used, never stopped).
# Exits with pytest's code; "no tests collected" (5) stays a failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

# A second stack (TPP_STACK_ENV / TPP_STACK_DIR, see deploy/stack.sh) is tested the same way.
set -a
# shellcheck source=deploy/local.env
. "${TPP_STACK_ENV:-deploy/local.env}"
set +a

make --no-print-directory install

started_here=0
if ! deploy/stack.sh status >/dev/null 2>&1; then
  started_here=1
fi
# shellcheck disable=SC2317 # called by the EXIT trap
stop_if_started() {
  if (( started_here )); then
    deploy/stack.sh down || echo "[test] warning: deploy/stack.sh down failed" >&2
  else
    echo "[test] the stack was running before: leaving it up"
  fi
}
trap stop_if_started EXIT

deploy/stack.sh up

rc=0
uv run --no-sync pytest "$@" || rc=$?
if (( rc == 5 )); then
  echo "[test] pytest collected no tests: that is a failure" >&2
fi
exit "$rc"
