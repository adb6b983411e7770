#!/usr/bin/env bash
# The whole platform on this machine:
#   deploy/platform.sh up      stack (PostgreSQL, Kafka, topics, migrations), the three
#                              services, demo data, the alumni subscriber example; prints
#                              where to look
#   deploy/platform.sh down    stop the three services (deploy/stack.sh down stops the rest)
#   deploy/platform.sh status  which services answer
# Service logs: .stack/services/<name>.log. A second `up` reuses what runs.
#
# TPP_REPLICAS=N (default 1) runs N independent replicas of every service, as separate pods
# would be: each its own process group (setsid), port (the service's TPP_<SERVICE>_PORT + 10
# per replica: 8001, 8011, 8021, ...) and metrics folder; replica 0 is named <service>,
# replica r > 0 <service>-<r> (pid and log files). All share the service's database and
# consumer group; one relay leads. TPP_STATIC_MEMBERSHIP=1 gives each replica's consumers
# static group member names after the instance (for rolling restarts).
# `down` and `status` handle whatever replicas run. TPP_STACK_ENV / TPP_STACK_DIR select
# another stack, as for deploy/stack.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STACK_ENV=${TPP_STACK_ENV:-$ROOT/deploy/local.env}
STACK=${TPP_STACK_DIR:-$ROOT/.stack}
RUN="$STACK/services"
SERVICES=(registry enrollment reporting)
REPLICAS=${TPP_REPLICAS:-1}
PORT_STEP=10  # tpp_ops.settings.REPLICA_PORT_STEP

set -a
# shellcheck source=deploy/local.env
. "$STACK_ENV"
set +a

log() { echo "[platform] $*"; }

port_of() { local var="TPP_${1^^}_PORT"; echo "${!var}"; }

# Instance <service> or <service>-<r>: its replica number and port.
replica_of() { [[ $1 == *-* ]] && echo "${1##*-}" || echo 0; }
service_of() { echo "${1%%-*}"; }
instance_port() { echo $(($(port_of "$(service_of "$1")") + PORT_STEP * $(replica_of "$1"))); }
instance_name() { if (($2 == 0)); then echo "$1"; else echo "$1-$2"; fi; }

# The instances to start (TPP_REPLICAS), or those that have a pid file (down, status).
wanted() { local r; for ((r = 0; r < REPLICAS; r++)); do instance_name "$1" "$r"; done; }
present() {
  local f
  for f in "$RUN/$1.pid" "$RUN/$1"-*.pid; do [[ -f $f ]] && basename "$f" .pid; done
  return 0
}

running() { [[ -f "$RUN/$1.pid" ]] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

ready() { curl -fs -o /dev/null "http://127.0.0.1:$(instance_port "$1")/health/ready"; }

start() {
  local name=$1 port service
  port=$(instance_port "$name")
  service=$(service_of "$name")
  if running "$name"; then
    log "$name already running (pid $(cat "$RUN/$name.pid"))"
    return
  fi
  mkdir -p "$RUN"
  # Two workers per service, as the benchmarks measure them (a 2-core machine: one Python
  # process uses one core), each on its own SO_REUSEPORT socket so that connections opened
  # together spread over both (tpp_plumbing.serve); uvicorn with uvloop and httptools.
  # setsid: a process group of its own, as a pod; the supervisor gives it its own metrics.
  local extra=()
  if [[ ${TPP_STATIC_MEMBERSHIP:-0} == 1 ]]; then
    extra+=("TPP_${service^^}_CONSUMER_INSTANCE_ID=$name")
  fi
  env "TPP_${service^^}_PORT=$port" "PROMETHEUS_MULTIPROC_DIR=$RUN/$name.metrics" "${extra[@]}" \
    setsid nohup uv run --no-sync python -m tpp_plumbing.serve "tpp_${service}.app:create_app" \
    --factory --host 127.0.0.1 --port "$port" --workers "${TPP_WORKERS:-2}" \
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
    # What is left of its process group (a worker that did not stop), as a pod's end.
    if kill -0 "$pid" 2>/dev/null; then kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid"; fi
    log "$name stopped"
  fi
  rm -f "$RUN/$name.pid"
}

case ${1:-} in
  up)
    SECONDS=0
    make --no-print-directory install >/dev/null
    deploy/stack.sh up
    for service in "${SERVICES[@]}"; do
      for name in $(wanted "$service"); do start "$name"; done
    done
    for service in "${SERVICES[@]}"; do
      for name in $(wanted "$service"); do wait_ready "$name"; done
    done
    uv run --no-sync python deploy/demo.py
    examples/alumni/run.sh up  # an outside subscriber, as docs/subscribing.md describes
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
  alumni      subscriber example  http://127.0.0.1:8010/alumni?by=country  (examples/alumni)
  Kafka       ${TPP_KAFKA_BOOTSTRAP}    PostgreSQL  ${TPP_PG_ADMIN_URL%%@*}@…:${TPP_PG_ADMIN_URL##*:}
  logs        ${RUN#"$ROOT"/}/<name>.log         stop: make down
TXT
    if ((REPLICAS > 1)); then
      log "$REPLICAS replicas of each service: ports +$PORT_STEP per replica (tpp-ops status asks each)"
    fi
    ;;
  down)
    examples/alumni/run.sh down
    for service in "${SERVICES[@]}"; do
      for name in $(present "$service"); do stop "$name"; done
    done
    ;;
  status)
    for service in "${SERVICES[@]}"; do
      names=$(present "$service")
      [[ -n $names ]] || names=$service
      for name in $names; do
        if running "$name" && ready "$name"; then log "$name ready on port $(instance_port "$name")"
        elif running "$name"; then log "$name running, not ready"
        else log "$name not running"; fi
      done
    done
    examples/alumni/run.sh status
    ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
