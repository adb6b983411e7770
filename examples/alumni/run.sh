#!/usr/bin/env bash
# The alumni example beside the local platform (deploy/platform.sh calls it):
#   examples/alumni/run.sh up      build the tpp-contracts wheel, install the example from it
#                                  into examples/alumni/.venv, create its database, start it
#   examples/alumni/run.sh down    stop it
#   examples/alumni/run.sh status  whether it answers
# It reads the platform's topics as the read-only `subscriber` principal (deploy/local.env).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
RUN="${TPP_STACK_DIR:-$ROOT/.stack}/services"
HERE=examples/alumni
set -a
# shellcheck source=deploy/local.env
. "${TPP_STACK_ENV:-deploy/local.env}"
set +a
: "${ALUMNI_PORT:=8010}" "${ALUMNI_DATABASE:=alumni}"
export ALUMNI_PORT
export ALUMNI_KAFKA_BOOTSTRAP=${ALUMNI_KAFKA_BOOTSTRAP:-$TPP_KAFKA_BOOTSTRAP}
export ALUMNI_KAFKA_USERNAME=${ALUMNI_KAFKA_USERNAME:-$TPP_SUBSCRIBER_KAFKA_USERNAME}
export ALUMNI_KAFKA_PASSWORD=${ALUMNI_KAFKA_PASSWORD:-$TPP_SUBSCRIBER_KAFKA_PASSWORD}
export ALUMNI_GROUP_ID=${ALUMNI_GROUP_ID:-$ALUMNI_KAFKA_USERNAME.alumni}
export ALUMNI_DATABASE_URL=${ALUMNI_DATABASE_URL:-${TPP_PG_ADMIN_URL%/*}/$ALUMNI_DATABASE}

log() { echo "[alumni] $*"; }
running() { [[ -f $RUN/alumni.pid ]] && kill -0 "$(cat "$RUN/alumni.pid")" 2>/dev/null; }
ready() { curl -fs -o /dev/null "http://127.0.0.1:$ALUMNI_PORT/alumni"; }

case ${1:-} in
  up)
    if running; then log "already running (pid $(cat "$RUN/alumni.pid"))"; exit 0; fi
    mkdir -p "$RUN" dist
    uv build -q --package tpp-contracts --wheel -o dist
    wheel=$(ls -t dist/tpp_contracts-*.whl | head -n 1)
    [[ -x $HERE/.venv/bin/python ]] || uv venv -q --python 3.11 "$HERE/.venv"
    # As a partner installs it: the contracts from the built wheel, not the workspace.
    uv pip install -q --python "$HERE/.venv" --no-sources --reinstall-package tpp-contracts \
      "$wheel" -e "$HERE"
    uv run --no-sync python - "$ALUMNI_DATABASE" <<'PY'
import asyncio, os, sys
import asyncpg
async def main(name: str) -> None:
    conn = await asyncpg.connect(os.environ["TPP_PG_ADMIN_URL"])
    if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
        await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
asyncio.run(main(sys.argv[1]))
PY
    nohup "$HERE/.venv/bin/python" -m alumni >"$RUN/alumni.log" 2>&1 &
    echo $! >"$RUN/alumni.pid"
    for _ in $(seq 1 60); do
      if ready; then log "ready on port $ALUMNI_PORT (pid $(cat "$RUN/alumni.pid"))"; exit 0; fi
      running || { log "exited; see $RUN/alumni.log"; tail -n 20 "$RUN/alumni.log" >&2; exit 1; }
      sleep 0.5
    done
    log "not ready after 30 s; see $RUN/alumni.log"; exit 1
    ;;
  down)
    if running; then
      pid=$(cat "$RUN/alumni.pid"); kill -TERM "$pid"
      for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      log "stopped"
    fi
    rm -f "$RUN/alumni.pid"
    ;;
  status)
    if running && ready; then log "ready on port $ALUMNI_PORT"
    elif running; then log "running, not ready"; else log "not running"; fi
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
