#!/usr/bin/env bash
# The whole platform on this machine:
#   deploy/platform.sh up      stack (PostgreSQL, Kafka, topics, migrations), the three
#                              services, demo data; prints where to look
#   deploy/platform.sh down    stop the three services (deploy/stack.sh down stops the rest)
#   deploy/platform.sh status  which services answer
# Service logs: .stack/services/<name>.log. A second `up` reuses what runs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
RUN="$ROOT/.stack/services"
SERVICES=(registry enrollment reporting)

set -a
# shellcheck source=deploy/local.env
. deploy/local.env
set +a

log() { echo "[platform] $*"; }

port_of() { local var="TPP_${1^^}_PORT"; echo "${!var}"; }

running() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

ready() { curl -fs -o /dev/null "http://127.0.0.1:$(port_of "$1")/health/ready"; }

start() {
  local name=$1 port
  port=$(port_of "$name")
  if running "$name"; then
    log "$name already running (pid $(cat "$RUN/$name.pid"))"
    return
  fi
  mkdir -p "$RUN"
  # Two workers per service, as the benchmarks measure them (a 2-core machine: one Python
  # process uses one core), each on its own SO_REUSEPORT socket so that connections opened
  # together spread over both (tpp_plumbing.serve); uvicorn with uvloop and httptools.
  nohup uv run --no-sync python -m tpp_plumbing.serve "tpp_${name}.app:create_app" --factory \
    --host 127.0.0.1 --port "$port" --workers "${TPP_WORKERS:-2}" --no-access-log \
    >"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  log "$name starting on port $port (pid $!)"
}

wait_ready() {
  local name=$1
  for _ in $(seq 1 120); do
    if ready "$name"; then return; fi
    if ! running "$name"; then
      log "$name exited; last lines of $RUN/$name.log:"; tail -n 30 "$RUN/$name.log" >&2; exit 1
    fi
    sleep 0.5
  done
  log "$name not ready after 60 s; see $RUN/$name.log"; exit 1
}

stop() {
  local name=$1 pid
  if running "$name"; then
    pid=$(cat "$RUN/$name.pid")
    kill -TERM "$pid"
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    log "$name stopped"
  fi
  rm -f "$RUN/$name.pid"
}

case ${1:-} in
  up)
    SECONDS=0
    make --no-print-directory install >/dev/null
    deploy/stack.sh up
    for name in "${SERVICES[@]}"; do start "$name"; done
    for name in "${SERVICES[@]}"; do wait_ready "$name"; done
    uv run --no-sync python deploy/demo.py
    log "up in ${SECONDS} s"
    viewer=$(uv run --no-sync tpp-ops token --role viewer)
    cat <<TXT

  registry    API docs  http://127.0.0.1:$(port_of registry)/docs
  enrollment  API docs  http://127.0.0.1:$(port_of enrollment)/docs
  reporting   API docs  http://127.0.0.1:$(port_of reporting)/docs
  dashboard   (viewer)  http://127.0.0.1:$(port_of reporting)/dashboard#token=${viewer}
  tokens      make ops ARGS="token --role operator"   (viewer; organizer --organizer-id ID)
  reports     e.g.      curl -H "Authorization: Bearer \$(make -s ops ARGS='token --role viewer')" \
                          http://127.0.0.1:$(port_of reporting)/reports/years/$(date +%Y)
  Kafka       ${TPP_KAFKA_BOOTSTRAP}    PostgreSQL  ${TPP_PG_ADMIN_URL%%@*}@…:55432
  logs        .stack/services/<name>.log         stop: make down
TXT
    ;;
  down)
    for name in "${SERVICES[@]}"; do stop "$name"; done
    ;;
  status)
    for name in "${SERVICES[@]}"; do
      if running "$name" && ready "$name"; then log "$name ready on port $(port_of "$name")"
      elif running "$name"; then log "$name running, not ready"
      else log "$name not running"; fi
    done
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
