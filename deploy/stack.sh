#!/usr/bin/env bash
# The local stack without Docker: a real PostgreSQL 15 cluster and a real Apache Kafka 4.1
# broker (KRaft, jars from Maven Central on the machine's Java 17), all data under .stack/.
#
#   deploy/stack.sh up       install what is missing, start PostgreSQL and Kafka (or reuse the
#                            running ones), create roles, databases and topics, run migrations
#   deploy/stack.sh down     stop Kafka (SIGTERM) and PostgreSQL (pg_ctl stop -m fast)
#   deploy/stack.sh reset    down, then delete .stack/ except the downloaded Kafka jars
#   deploy/stack.sh status   print what runs; exit 0 when both run, 3 otherwise
#
# Endpoints and credentials: deploy/local.env. Kafka authenticates clients with SASL/SCRAM and
# denies what no ACL allows; `up` formats the credentials in and creates the ACLs. Logs: .stack/pg/log, .stack/kafka/logs.
# A second, independent stack (the fault-injection suite restarts its own broker and
# database) takes its endpoints from another env file and its data from another directory:
#   TPP_STACK_ENV=/tmp/x/local.env TPP_STACK_DIR=/tmp/x deploy/stack.sh up
# The ports come from that file: TPP_KAFKA_BOOTSTRAP (the controller listens on the next
# port unless TPP_KAFKA_CONTROLLER_PORT says otherwise) and TPP_PG_ADMIN_URL.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEPLOY=$ROOT/deploy
STACK_ENV=${TPP_STACK_ENV:-$DEPLOY/local.env}
STACK=${TPP_STACK_DIR:-$ROOT/.stack}

set -a
# shellcheck source=deploy/local.env
. "$STACK_ENV"
set +a
SERVICES=(registry enrollment reporting)

PG_VERSION=15
PG_BIN=/usr/lib/postgresql/$PG_VERSION/bin
# The port of TPP_PG_ADMIN_URL (postgresql://user:password@host:PORT/database).
PG_PORT=${TPP_PG_ADMIN_URL##*@}
PG_PORT=${PG_PORT#*:}
PG_PORT=${PG_PORT%%/*}
PG_DIR=$STACK/pg
PG_DATA=$PG_DIR/data
PG_LOG=$PG_DIR/log/postgres.log

KAFKA_PORT=${TPP_KAFKA_BOOTSTRAP##*:}
KAFKA_CONTROLLER_PORT=${TPP_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_DIR=$STACK/kafka
# The jars belong to the checkout, not to one stack: every stack of it shares them.
KAFKA_LIBS=$ROOT/.stack/kafka/libs
KAFKA_PID=$KAFKA_DIR/kafka.pid
KAFKA_LOG=$KAFKA_DIR/logs/kafka.log
KAFKA_CONF=$KAFKA_DIR/server.properties
KAFKA_POM=$DEPLOY/kafka/pom.xml
KAFKA_JAVA_OPTS=(-Xms256m -Xmx512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20
  -XX:+ExitOnOutOfMemoryError -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$DEPLOY/kafka/log4j2.properties")

UV_VERSION=0.13.8
UV_RUN=(uv run --frozen)

# ---------------------------------------------------------------------------- helpers

now_ms() { date +%s%3N; }
STARTED_MS=$(now_ms)
log() { printf '[stack] %s\n' "$*"; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }
# `timed LABEL CMD...` runs CMD and prints how long it took.
timed() {
  local label=$1 t0
  shift
  t0=$(now_ms)
  "$@"
  log "$(printf '%-34s %6.1f s' "$label" "$(( $(now_ms) - t0 ))e-3")"
}
total() { log "$(printf '%-34s %6.1f s' "$1" "$(( $(now_ms) - STARTED_MS ))e-3")"; }

if [[ $EUID -eq 0 ]]; then
  SUDO=()
  # PostgreSQL refuses to run as root: the cluster belongs to the postgres system user.
  PG_USER=postgres
  as_pg() { runuser -u postgres -- "$@"; }
else
  SUDO=(sudo)
  PG_USER=$(id -un)
  as_pg() { "$@"; }
fi

# A unix socket path must fit in 107 bytes; a deeply nested checkout falls back to /tmp.
pg_socket_dir() {
  local dir=$PG_DIR/run
  if (( ${#dir} + 20 > 107 )); then
    dir=/tmp/tpp-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)
  fi
  printf '%s' "$dir"
}
PG_RUN=$(pg_socket_dir)

apt_install() {
  log "installing $* with apt-get"
  "${SUDO[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "$@"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

psql_admin() {
  as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_RUN" -p "$PG_PORT" -U postgres \
    -d postgres "$@"
}

# ---------------------------------------------------------------------------- install

ensure_tools() {
  local missing=()
  [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl && -x $PG_BIN/psql ]] || missing+=(postgresql)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  if [[ ! -d $KAFKA_LIBS ]] && ! command -v mvn >/dev/null; then missing+=(maven); fi
  if (( ${#missing[@]} )); then apt_install "${missing[@]}"; fi
  [[ -x $PG_BIN/initdb ]] || die "PostgreSQL $PG_VERSION binaries not found in $PG_BIN"
  if ! command -v uv >/dev/null; then
    log "installing uv $UV_VERSION with pip"
    local pip=(python3 -m pip)
    command -v pip >/dev/null && pip=(pip)
    # Debian marks its python as externally managed; uv is a standalone binary, safe to add.
    "${pip[@]}" install -q "uv==$UV_VERSION" ||
      "${pip[@]}" install -q --break-system-packages "uv==$UV_VERSION"
  fi
}

# Kafka jars are resolved from deploy/kafka/pom.xml; a changed pom resolves them again.
ensure_kafka_jars() {
  local want have=""
  want=$(sha256sum "$KAFKA_POM" | cut -d' ' -f1)
  [[ -f $KAFKA_LIBS/.pom.sha256 ]] && have=$(<"$KAFKA_LIBS/.pom.sha256")
  [[ $want == "$have" ]] && return 0
  command -v mvn >/dev/null || apt_install maven
  log "resolving Kafka jars from Maven Central into ${KAFKA_LIBS#"$ROOT"/}"
  rm -rf "$KAFKA_LIBS.tmp"
  mkdir -p "$KAFKA_DIR" "$(dirname "$KAFKA_LIBS")"
  mvn -q -B -f "$KAFKA_POM" dependency:copy-dependencies "-DoutputDirectory=$KAFKA_LIBS.tmp" \
    >"$KAFKA_DIR/maven.log" 2>&1 ||
    { tail -n 30 "$KAFKA_DIR/maven.log" >&2; die "Maven could not resolve the Kafka jars"; }
  printf '%s\n' "$want" >"$KAFKA_LIBS.tmp/.pom.sha256"
  rm -rf "$KAFKA_LIBS"
  mv "$KAFKA_LIBS.tmp" "$KAFKA_LIBS"
}

# ---------------------------------------------------------------------------- PostgreSQL

pg_running() { [[ -f $PG_DATA/PG_VERSION ]] && as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" status >/dev/null 2>&1; }

# The postgres user must be able to walk down to .stack/pg (a checkout under /root is not).
ensure_traversable() {
  [[ $EUID -eq 0 ]] || return 0
  local dir=$PG_DIR
  while [[ $dir != / ]]; do
    if ! runuser -u postgres -- test -x "$dir"; then
      log "granting others search (x) permission on $dir so PostgreSQL can reach its data"
      chmod o+x "$dir"
    fi
    dir=$(dirname "$dir")
  done
}

pg_write_config() {
  as_pg tee "$PG_DATA/tpp.conf" >/dev/null <<EOF
# Written by deploy/stack.sh on every start; included from postgresql.conf.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_RUN'
# Per worker: the ORM pool (pool size + as many overflow), the raw read pool and the raw
# command pool (pool size each, opened as used); 2 workers x 3 services at the default 10.
max_connections = 300
shared_buffers = 256MB
fsync = on
# Every 10 s rather than every minute: under a stream of commands the hot tables (their
# scale factors are set by migrations) are vacuumed while it lasts, so counts by session stay
# index-only and session rows' update chains stay short.
autovacuum_naptime = 10s
EOF
  local local_method=peer
  # Without root the cluster runs as the developer; the socket directory is private (0700).
  [[ $EUID -eq 0 ]] || local_method=trust
  as_pg tee "$PG_DATA/pg_hba.conf" >/dev/null <<EOF
# Written by deploy/stack.sh on every start.
# TYPE  DATABASE  USER      ADDRESS         METHOD
local   all       postgres                  $local_method
local   all       all                       scram-sha-256
host    all       all       127.0.0.1/32    scram-sha-256
EOF
}

pg_init() {
  [[ -f $PG_DATA/PG_VERSION ]] && return 0
  log "initializing the PostgreSQL cluster in ${PG_DATA#"$ROOT"/}"
  install -d -m 700 -o "$PG_USER" "$PG_DATA"
  local pwfile=$PG_DIR/.pwfile
  install -m 600 -o "$PG_USER" /dev/null "$pwfile"
  printf 'postgres\n' >"$pwfile"
  as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres --pwfile="$pwfile" --encoding=UTF8 \
    --locale=C.UTF-8 --auth-local=peer --auth-host=scram-sha-256 >"$PG_DIR/initdb.log"
  rm -f "$pwfile"
  printf "\ninclude_if_exists = 'tpp.conf'\n" | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_start() {
  mkdir -p "$PG_DIR"
  chmod 755 "$STACK" "$PG_DIR"
  ensure_traversable
  pg_init
  if pg_running; then
    log "PostgreSQL already running on 127.0.0.1:$PG_PORT"
    return 0
  fi
  port_open "$PG_PORT" && die "port $PG_PORT is taken by another process"
  install -d -m 755 -o "$PG_USER" "$PG_DIR/log"
  install -d -m 700 -o "$PG_USER" "$PG_RUN"
  pg_write_config
  as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t 60 -s start ||
    { tail -n 20 "$PG_LOG" >&2; die "PostgreSQL did not start (log: $PG_LOG)"; }
}

# Roles and databases (deploy/postgres/init.sql, shared with docker-compose) and the superuser
# password used by TPP_PG_ADMIN_URL. Idempotent.
pg_provision() {
  { cat "$DEPLOY/postgres/init.sql"; printf "ALTER ROLE postgres PASSWORD 'postgres';\n"; } |
    psql_admin
}

pg_stop() {
  if pg_running; then
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 60 -s stop
    log "PostgreSQL stopped"
  else
    log "PostgreSQL not running"
  fi
}

# ---------------------------------------------------------------------------- Kafka

kafka_pid() {
  local pid
  [[ -f $KAFKA_PID ]] || return 1
  pid=$(<"$KAFKA_PID")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline" &&
    printf '%s' "$pid"
}

# Kafka's principals as "user password" lines: the admin (TPP_KAFKA_USERNAME, a super user)
# and each role's own (TPP_<ROLE>_KAFKA_USERNAME / _PASSWORD in the env file).
KAFKA_ROLES=(REGISTRY ENROLLMENT REPORTING OPS)
kafka_users() {
  local role user pass
  printf '%s %s\n' "${TPP_KAFKA_USERNAME:?TPP_KAFKA_USERNAME missing in $STACK_ENV}" \
    "${TPP_KAFKA_PASSWORD:?TPP_KAFKA_PASSWORD missing in $STACK_ENV}"
  for role in "${KAFKA_ROLES[@]}"; do
    user=TPP_${role}_KAFKA_USERNAME pass=TPP_${role}_KAFKA_PASSWORD
    [[ -n ${!user:-} && -n ${!pass:-} ]] || die "$user / $pass missing in $STACK_ENV"
    printf '%s %s\n' "${!user}" "${!pass}"
  done
}
# What the data directory was formatted for; an older checkout's PLAINTEXT broker has none.
KAFKA_SECURITY=sasl-scram-sha-512+acl
KAFKA_SECURITY_FILE=$KAFKA_DIR/security

kafka_init() {
  mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
  # The rendered files hold the admin's password: readable by their owner only.
  install -m 600 /dev/null "$KAFKA_CONF"
  sed -e "s|@STACK_DIR@|$STACK|g" -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
    -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" -e "s|@ADMIN_USER@|$TPP_KAFKA_USERNAME|g" \
    -e "s|@ADMIN_PASSWORD@|$TPP_KAFKA_PASSWORD|g" "$DEPLOY/kafka/server.properties" >"$KAFKA_CONF"
  install -m 600 /dev/null "$KAFKA_DIR/admin.properties"
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=SCRAM-SHA-512" \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$TPP_KAFKA_USERNAME\" password=\"$TPP_KAFKA_PASSWORD\";" \
    >"$KAFKA_DIR/admin.properties"
  if [[ -f $KAFKA_DIR/data/meta.properties &&
    $(cat "$KAFKA_SECURITY_FILE" 2>/dev/null) != "$KAFKA_SECURITY" ]]; then
    log "Kafka data in ${KAFKA_DIR#"$ROOT"/}/data was formatted for PLAINTEXT by an older" \
      "checkout: re-formatting it for SASL/SCRAM and ACLs (its topics and events are deleted)"
    rm -rf "${KAFKA_DIR:?}/data" "$KAFKA_DIR/scram.sha256"
    mkdir -p "$KAFKA_DIR/data"
  fi
  [[ -f $KAFKA_DIR/data/meta.properties ]] && return 0
  if [[ ! -s $KAFKA_DIR/cluster.id ]]; then
    # A Kafka cluster id is a random UUID in URL-safe base64 without padding, never starting
    # with "-" (what `kafka-storage random-uuid` prints, without starting a JVM for it).
    "${UV_RUN[@]}" python -c 'import base64, uuid
new = lambda: base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
while (cid := new()).startswith("-"):
    pass
print(cid)' >"$KAFKA_DIR/cluster.id"
  fi
  log "formatting Kafka storage in ${KAFKA_DIR#"$ROOT"/}/data (cluster $(<"$KAFKA_DIR/cluster.id"))," \
    "SCRAM users $(kafka_users | cut -d' ' -f1 | paste -sd' ' -)"
  local scram=() user pass
  while read -r user pass; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$pass]")
  done < <(kafka_users)
  java -cp "$KAFKA_LIBS/*" "${KAFKA_JAVA_OPTS[@]}" kafka.tools.StorageTool format --standalone \
    -t "$(<"$KAFKA_DIR/cluster.id")" -c "$KAFKA_CONF" "${scram[@]}" >>"$KAFKA_LOG"
  printf '%s\n' "$KAFKA_SECURITY" >"$KAFKA_SECURITY_FILE"
  kafka_users | sha256sum | cut -d' ' -f1 >"$KAFKA_DIR/scram.sha256"
}

# SCRAM credentials changed in the env file since the format: set them on the running broker.
kafka_credentials() {
  local want have="" user pass
  want=$(kafka_users | sha256sum | cut -d' ' -f1)
  [[ -f $KAFKA_DIR/scram.sha256 ]] && have=$(<"$KAFKA_DIR/scram.sha256")
  [[ $want == "$have" ]] && return 0
  log "SCRAM credentials changed in $STACK_ENV: setting them on the broker"
  while read -r user pass; do
    java -cp "$KAFKA_LIBS/*" -Xmx128m "-Dlog4j2.configurationFile=$DEPLOY/kafka/log4j2.properties" \
      kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$KAFKA_PORT" \
      --command-config "$KAFKA_DIR/admin.properties" --alter --entity-type users \
      --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$pass]" >>"$KAFKA_LOG" 2>&1 ||
      die "could not set the SCRAM credentials of $user (log: $KAFKA_LOG)"
  done < <(kafka_users)
  printf '%s\n' "$want" >"$KAFKA_DIR/scram.sha256"
}

# The platform's ACLs (tpp_plumbing.acl), created idempotently as the admin.
kafka_acls() { "${UV_RUN[@]}" python -m tpp_plumbing.acl | sed 's/^/[stack] Kafka: /'; }

kafka_start() {
  local pid
  if pid=$(kafka_pid); then
    [[ $(cat "$KAFKA_SECURITY_FILE" 2>/dev/null) == "$KAFKA_SECURITY" ]] ||
      die "the running Kafka (pid $pid) is an older checkout's PLAINTEXT broker; run" \
        "'$0 down' then '$0 up' to re-format it with SASL/SCRAM and ACLs"
    log "Kafka already running (pid $pid) on 127.0.0.1:$KAFKA_PORT"
    return 0
  fi
  port_open "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by another process"
  kafka_init
  rm -f "$KAFKA_PID"
  printf '\n=== start %s ===\n' "$(date -Is)" >>"$KAFKA_LOG"
  # Its own session, so that the broker outlives this script and its process group; the
  # inner shell writes its pid, then becomes the JVM.
  # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
  setsid --fork bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PID" \
    java "${KAFKA_JAVA_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$KAFKA_CONF" \
    </dev/null >>"$KAFKA_LOG" 2>&1
  local deadline=$(( $(date +%s) + 60 ))
  until port_open "$KAFKA_PORT"; do
    if (( $(date +%s) > deadline )) || { [[ -s $KAFKA_PID ]] && ! kafka_pid >/dev/null; }; then
      tail -n 30 "$KAFKA_LOG" >&2
      die "Kafka did not start (log: $KAFKA_LOG)"
    fi
    sleep 0.2
  done
}

kafka_stop() {
  local pid
  if ! pid=$(kafka_pid); then
    log "Kafka not running"
    rm -f "$KAFKA_PID"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$(( $(date +%s) + 60 ))
  while kill -0 "$pid" 2>/dev/null; do
    if (( $(date +%s) > deadline )); then
      log "Kafka (pid $pid) ignored SIGTERM for 60 s: killing it"
      kill -KILL "$pid"
    fi
    sleep 0.2
  done
  rm -f "$KAFKA_PID"
  log "Kafka stopped"
}

# Waits until the broker answers metadata requests, then creates missing topics.
kafka_topics() { "${UV_RUN[@]}" python deploy/topics.py --wait 60 --prefix ""; }

# ---------------------------------------------------------------------------- migrations

# `alembic upgrade head` for each service with an alembic.ini, against TPP_<SVC>_DATABASE_URL.
migrate() { "${UV_RUN[@]}" python deploy/migrate.py "${SERVICES[@]}"; }

# ---------------------------------------------------------------------------- commands

cmd_up() {
  timed "tools present" ensure_tools
  timed "Kafka jars present" ensure_kafka_jars
  timed "PostgreSQL started" pg_start
  timed "Kafka started" kafka_start
  timed "roles and databases" pg_provision
  timed "Kafka ready, topics" kafka_topics
  timed "Kafka credentials" kafka_credentials
  timed "Kafka ACLs" kafka_acls
  timed "migrations (all services)" migrate
  total "stack up in"
}

cmd_down() {
  kafka_stop
  pg_stop
  total "stack down in"
}

cmd_reset() {
  # The services of `make up` keep their pid files under .stack/ too: stop them before
  # deleting it (a second stack in another folder has no such services).
  if [[ $STACK == "$ROOT/.stack" && -x $DEPLOY/platform.sh ]]; then "$DEPLOY/platform.sh" down; fi
  cmd_down
  # The downloaded jars survive a reset: resolving them again is the slowest part of `up`.
  if [[ ! -d $STACK ]]; then
    :  # nothing to delete (a second stack that never ran)
  elif [[ -d $KAFKA_LIBS ]]; then
    find "$STACK" -mindepth 1 -maxdepth 1 ! -name kafka -exec rm -rf {} +
    if [[ -d $KAFKA_DIR ]]; then
      find "$KAFKA_DIR" -mindepth 1 -maxdepth 1 ! -name libs -exec rm -rf {} +
    fi
  else
    rm -rf "$STACK"
  fi
  [[ $PG_RUN == "$PG_DIR/run" ]] || rm -rf "$PG_RUN"
  log "deleted the stack's data (kept ${KAFKA_LIBS#"$ROOT"/})"
}

cmd_status() {
  local ok=0 pid
  if pg_running; then
    pid=$(head -n 1 "$PG_DATA/postmaster.pid")
    log "PostgreSQL running (pid $pid) on 127.0.0.1:$PG_PORT, data ${PG_DATA#"$ROOT"/}"
    log "  databases: $(psql_admin -At -c "SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database WHERE NOT datistemplate")"
  else
    log "PostgreSQL not running"
    ok=3
  fi
  if pid=$(kafka_pid); then
    log "Kafka running (pid $pid) on 127.0.0.1:$KAFKA_PORT, data ${KAFKA_DIR#"$ROOT"/}/data"
    if command -v uv >/dev/null; then
      log "  topics: $("${UV_RUN[@]}" python deploy/topics.py --wait 5 --list | tr '\n' ' ')"
    fi
  else
    log "Kafka not running"
    ok=3
  fi
  return "$ok"
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up|down|reset|status" >&2
    exit 2
    ;;
esac
