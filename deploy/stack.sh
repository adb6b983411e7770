#!/usr/bin/env bash
# The local stack without Docker: a real PostgreSQL 15 cluster and a real Apache Kafka 4.1
# broker (KRaft, jars from Maven Central on the machine's Java 17), all data under .stack/.
#
#   deploy/stack.sh up       install what is missing, start PostgreSQL and Kafka (or reuse the
#                            running ones), create roles, databases and topics, run migrations
#   deploy/stack.sh up kafka the same for Kafka alone (no PostgreSQL, no migrations)
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
#
# TPP_KAFKA_BROKERS=3 (environment or env file; default 1) makes Kafka a cluster of three
# KRaft nodes, each both broker and controller (a quorum of three), from the same jars: node N
# listens on the first node's client and controller ports + 2*(N-1) and keeps its data, logs
# and pid in kafka/node-N/. Topics then get replication factor 3 and min.insync.replicas 2
# (unless TPP_TOPIC_* say otherwise, see tpp_plumbing.messaging.topics). A stack keeps the shape it was
# formatted with: `reset` before changing it. `down` and `status` handle either shape.
#
# A stack another checkout (or another TPP_STACK_DIR) started on this env's ports is found by
# its ports answering this env's credentials: `up` uses it as it is (starts, provisions and
# migrates nothing), `down` and `reset` leave it running, `status` counts it as running. A
# port held by anything else stops `up` before it changes anything, saying so.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
DEPLOY=$ROOT/deploy
STACK_ENV=${TPP_STACK_ENV:-$DEPLOY/local.env}
STACK=${TPP_STACK_DIR:-$ROOT/.stack}
# The number of Kafka nodes given on the command line wins over the env file's.
KAFKA_BROKERS_ASKED=${TPP_KAFKA_BROKERS:-}

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

KAFKA_BROKERS=${KAFKA_BROKERS_ASKED:-${TPP_KAFKA_BROKERS:-1}}
[[ $KAFKA_BROKERS =~ ^[1-9]$ ]] ||
  { echo "[stack] error: TPP_KAFKA_BROKERS must be 1 to 9, not '$KAFKA_BROKERS'" >&2; exit 2; }
# The first node's client port: the first address of TPP_KAFKA_BOOTSTRAP.
KAFKA_PORT=${TPP_KAFKA_BOOTSTRAP%%,*}
KAFKA_PORT=${KAFKA_PORT##*:}
KAFKA_CONTROLLER_PORT=${TPP_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
# Replicas of the internal topics and of the platform's (at most 3), and the replicas that must
# have a write before acks=all succeeds: one node may be lost without refusing writes.
KAFKA_REPLICATION=$(( KAFKA_BROKERS < 3 ? KAFKA_BROKERS : 3 ))
KAFKA_MIN_ISR=$(( KAFKA_REPLICATION > 2 ? 2 : 1 ))
KAFKA_DIR=$STACK/kafka
# The jars belong to the checkout, not to one stack: every stack of it shares them.
KAFKA_LIBS=$ROOT/.stack/kafka/libs
KAFKA_POM=$DEPLOY/kafka/pom.xml
# How many nodes the data was formatted for (a single broker's older data has no such file).
KAFKA_SHAPE_FILE=$KAFKA_DIR/nodes
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

# ---------------------------------------------------------------------------- another stack

# Another stack's PostgreSQL has no socket under $STACK: reached over TCP as TPP_PG_ADMIN_URL.
psql_url() {
  [[ -x $PG_BIN/psql ]] || return 1
  PGCONNECT_TIMEOUT=5 "$PG_BIN/psql" "$TPP_PG_ADMIN_URL" -X -q -v ON_ERROR_STOP=1 "$@"
}
# Without uv (`up` installs it first) the credentials cannot be checked: taken as a broker.
kafka_answers() {
  command -v uv >/dev/null || return 0
  "${UV_RUN[@]}" python deploy/topics.py --wait 5 --list >/dev/null 2>&1
}
# Who serves this env's PostgreSQL (Kafka) port: own (started under $STACK), other (another
# stack that accepts this env's credentials), taken (a process that does not) or free.
pg_state() {
  if pg_running; then echo own
  elif ! port_open "$PG_PORT"; then echo free
  elif psql_url -At -c 'SELECT 1' >/dev/null 2>&1; then echo other
  else echo taken; fi
}
kafka_state() {
  if kafka_own_running; then echo own
  elif ! port_open "$KAFKA_PORT"; then echo free
  elif kafka_answers; then echo other
  else echo taken; fi
}
not_ours() {
  printf '%s on 127.0.0.1:%s runs from another stack (not started under %s)' "$1" "$2" "$STACK"
}
taken() {
  printf 'port %s is taken by a process that does not accept the %s credentials of %s: stop' \
    "$1" "$2" "$STACK_ENV"
  printf ' it, or give this stack other ports (TPP_STACK_ENV, TPP_STACK_DIR)'
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
  elif port_open "$PG_PORT"; then
    log "$(not_ours PostgreSQL "$PG_PORT"): left running"
  else
    log "PostgreSQL not running"
  fi
}

# ---------------------------------------------------------------------------- Kafka

# Node N (1-based) of the cluster: its folder and ports. A single broker keeps the layout it
# always had (kafka/data, kafka/kafka.pid, ...); a cluster's nodes live in kafka/node-N/.
node_dir() {
  if (( KAFKA_BROKERS == 1 )); then printf '%s' "$KAFKA_DIR"; else printf '%s' "$KAFKA_DIR/node-$1"; fi
}
node_port() { printf '%s' $(( KAFKA_PORT + 2 * ($1 - 1) )); }
node_controller_port() { printf '%s' $(( KAFKA_CONTROLLER_PORT + 2 * ($1 - 1) )); }
kafka_nodes() { seq 1 "$KAFKA_BROKERS"; }
# Every node's address, for clients (a client that knows only one cannot start while it is down).
kafka_bootstrap() {
  local n out=()
  for n in $(kafka_nodes); do out+=("127.0.0.1:$(node_port "$n")"); done
  (IFS=,; printf '%s' "${out[*]}")
}
KAFKA_LOG=$(node_dir 1)/logs/kafka.log
# The platform's own clients (topics, ACLs) started by this script reach every node.
if (( KAFKA_BROKERS > 1 )); then TPP_KAFKA_BOOTSTRAP=$(kafka_bootstrap); export TPP_KAFKA_BOOTSTRAP; fi

# The live broker whose pid FILE holds, if any.
pid_in() {
  local pid
  [[ -f $1 ]] || return 1
  pid=$(<"$1")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null && grep -qa 'kafka\.Kafka' "/proc/$pid/cmdline" &&
    printf '%s' "$pid"
}
# The pid files of either shape, whatever TPP_KAFKA_BROKERS says now.
kafka_pid_files() {
  local file
  for file in "$KAFKA_DIR/kafka.pid" "$KAFKA_DIR"/node-*/kafka.pid; do
    [[ -f $file ]] && printf '%s\n' "$file"
  done
  return 0
}
# Some node of this stack runs.
kafka_own_running() {
  local file
  while read -r file; do
    pid_in "$file" >/dev/null && return 0
  done < <(kafka_pid_files)
  return 1
}

# Kafka's principals as "user password" lines: the admin (TPP_KAFKA_USERNAME, a super user)
# and each role's own (TPP_<ROLE>_KAFKA_USERNAME / _PASSWORD in the env file).
KAFKA_ROLES=(REGISTRY ENROLLMENT REPORTING OPS SUBSCRIBER)
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

# The number of nodes the stack's Kafka data was formatted for (nothing if never formatted).
kafka_formatted_nodes() {
  if [[ -s $KAFKA_SHAPE_FILE ]]; then
    cat "$KAFKA_SHAPE_FILE"
  elif [[ -f $KAFKA_DIR/data/meta.properties ]]; then
    echo 1
  fi
}

kafka_check_shape() {
  local have
  have=$(kafka_formatted_nodes)
  [[ -z $have || $have == "$KAFKA_BROKERS" ]] ||
    die "the Kafka data in ${KAFKA_DIR#"$ROOT"/} is formatted for $have node(s), not" \
      "TPP_KAFKA_BROKERS=$KAFKA_BROKERS: run '$0 reset' first (it deletes the stack's data)"
}

# Node N's server.properties from the template (rendered on every start).
kafka_render() {
  local n=$1 dir quorum voters=() m
  dir=$(node_dir "$n")
  mkdir -p "$dir/data" "$dir/logs"
  if (( KAFKA_BROKERS == 1 )); then
    quorum="controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT"
  else
    for m in $(kafka_nodes); do voters+=("$m@127.0.0.1:$(node_controller_port "$m")"); done
    quorum="controller.quorum.voters=$(IFS=,; printf '%s' "${voters[*]}")"
  fi
  # The rendered files hold the admin's password: readable by their owner only.
  install -m 600 /dev/null "$dir/server.properties"
  sed -e "s|@NODE_ID@|$n|g" -e "s|@DATA_DIR@|$dir/data|g" -e "s|@QUORUM@|$quorum|g" \
    -e "s|@KAFKA_PORT@|$(node_port "$n")|g" -e "s|@CONTROLLER_PORT@|$(node_controller_port "$n")|g" \
    -e "s|@REPLICATION@|$KAFKA_REPLICATION|g" -e "s|@MIN_ISR@|$KAFKA_MIN_ISR|g" \
    -e "s|@ADMIN_USER@|$TPP_KAFKA_USERNAME|g" -e "s|@ADMIN_PASSWORD@|$TPP_KAFKA_PASSWORD|g" \
    "$DEPLOY/kafka/server.properties" >"$dir/server.properties"
}

kafka_init() {
  local n dir
  mkdir -p "$KAFKA_DIR"
  install -m 600 /dev/null "$KAFKA_DIR/admin.properties"
  printf '%s\n' "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=SCRAM-SHA-512" \
    "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username=\"$TPP_KAFKA_USERNAME\" password=\"$TPP_KAFKA_PASSWORD\";" \
    >"$KAFKA_DIR/admin.properties"
  if [[ -f $KAFKA_DIR/data/meta.properties &&
    $(cat "$KAFKA_SECURITY_FILE" 2>/dev/null) != "$KAFKA_SECURITY" ]]; then
    log "Kafka data in ${KAFKA_DIR#"$ROOT"/}/data was formatted for PLAINTEXT by an older" \
      "checkout: re-formatting it for SASL/SCRAM and ACLs (its topics and events are deleted)"
    rm -rf "${KAFKA_DIR:?}/data" "$KAFKA_DIR/scram.sha256"
  fi
  for n in $(kafka_nodes); do kafka_render "$n"; done
  if [[ ! -s $KAFKA_DIR/cluster.id ]]; then
    # A Kafka cluster id is a random UUID in URL-safe base64 without padding, never starting
    # with "-" (what `kafka-storage random-uuid` prints, without starting a JVM for it).
    "${UV_RUN[@]}" python -c 'import base64, uuid
new = lambda: base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
while (cid := new()).startswith("-"):
    pass
print(cid)' >"$KAFKA_DIR/cluster.id"
  fi
  local scram=() user pass quorum=(--standalone)
  # A cluster's voters are in its configuration (controller.quorum.voters).
  (( KAFKA_BROKERS == 1 )) || quorum=()
  while read -r user pass; do
    scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$pass]")
  done < <(kafka_users)
  # The nodes are formatted side by side: each format is a JVM start, seconds of CPU.
  local formats=() failed=0 pid
  for n in $(kafka_nodes); do
    dir=$(node_dir "$n")
    [[ -f $dir/data/meta.properties ]] && continue
    log "formatting Kafka storage in ${dir#"$ROOT"/}/data (node $n of $KAFKA_BROKERS, cluster" \
      "$(<"$KAFKA_DIR/cluster.id")), SCRAM users $(kafka_users | cut -d' ' -f1 | paste -sd' ' -)"
    java -cp "$KAFKA_LIBS/*" "${KAFKA_JAVA_OPTS[@]}" kafka.tools.StorageTool format \
      "${quorum[@]}" -t "$(<"$KAFKA_DIR/cluster.id")" -c "$dir/server.properties" "${scram[@]}" \
      >>"$dir/logs/kafka.log" 2>&1 &
    formats+=("$!")
  done
  (( ${#formats[@]} )) || return 0
  for pid in "${formats[@]}"; do wait "$pid" || failed=1; done
  (( ! failed )) || die "formatting Kafka storage failed (logs: ${KAFKA_DIR#"$ROOT"/}/**/kafka.log)"
  printf '%s\n' "$KAFKA_SECURITY" >"$KAFKA_SECURITY_FILE"
  printf '%s\n' "$KAFKA_BROKERS" >"$KAFKA_SHAPE_FILE"
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
      kafka.admin.ConfigCommand --bootstrap-server "$(kafka_bootstrap)" \
      --command-config "$KAFKA_DIR/admin.properties" --alter --entity-type users \
      --entity-name "$user" --add-config "SCRAM-SHA-512=[password=$pass]" >>"$KAFKA_LOG" 2>&1 ||
      die "could not set the SCRAM credentials of $user (log: $KAFKA_LOG)"
  done < <(kafka_users)
  printf '%s\n' "$want" >"$KAFKA_DIR/scram.sha256"
}

# The platform's ACLs (tpp_ops.acl), created idempotently as the admin.
kafka_acls() { "${UV_RUN[@]}" python -m tpp_ops.acl | sed 's/^/[stack] Kafka: /'; }

kafka_start() {
  local n pid dir starting=() running=0
  kafka_check_shape
  for n in $(kafka_nodes); do
    dir=$(node_dir "$n")
    if pid=$(pid_in "$dir/kafka.pid"); then
      [[ $(cat "$KAFKA_SECURITY_FILE" 2>/dev/null) == "$KAFKA_SECURITY" ]] ||
        die "the running Kafka (pid $pid) is an older checkout's PLAINTEXT broker; run" \
          "'$0 down' then '$0 up' to re-format it with SASL/SCRAM and ACLs"
      running=$(( running + 1 ))
      continue
    fi
    port_open "$(node_port "$n")" && die "port $(node_port "$n") is taken by another process"
    starting+=("$n")
  done
  if (( running )); then
    log "Kafka already running: $running of $KAFKA_BROKERS node(s) on $(kafka_bootstrap)"
  fi
  (( ${#starting[@]} )) || return 0
  kafka_init
  for n in "${starting[@]}"; do
    dir=$(node_dir "$n")
    rm -f "$dir/kafka.pid"
    printf '\n=== start %s ===\n' "$(date -Is)" >>"$dir/logs/kafka.log"
    # Its own session, so that the broker outlives this script and its process group; the
    # inner shell writes its pid, then becomes the JVM.
    # shellcheck disable=SC2016 # $$ and $@ belong to the inner shell
    setsid --fork bash -c 'echo $$ >"$0"; exec "$@"' "$dir/kafka.pid" \
      java "${KAFKA_JAVA_OPTS[@]}" -cp "$KAFKA_LIBS/*" kafka.Kafka "$dir/server.properties" \
      </dev/null >>"$dir/logs/kafka.log" 2>&1
  done
  # A cluster's brokers open their port once a quorum of controllers runs: all are started.
  local deadline=$(( $(date +%s) + 90 ))
  for n in "${starting[@]}"; do
    dir=$(node_dir "$n")
    until port_open "$(node_port "$n")"; do
      if (( $(date +%s) > deadline )) || { [[ -s $dir/kafka.pid ]] && ! pid_in "$dir/kafka.pid" >/dev/null; }; then
        tail -n 30 "$dir/logs/kafka.log" >&2
        die "Kafka node $n did not start (log: $dir/logs/kafka.log)"
      fi
      sleep 0.2
    done
  done
}

# Every node of either shape: SIGTERM to all at once (a cluster stopped one node at a time
# would lose its quorum half-way and leave the last brokers waiting for it).
kafka_stop() {
  local file pid pids=()
  while read -r file; do
    if pid=$(pid_in "$file"); then
      kill -TERM "$pid"
      pids+=("$pid")
    fi
  done < <(kafka_pid_files)
  if (( ! ${#pids[@]} )) && port_open "$KAFKA_PORT"; then
    log "$(not_ours Kafka "$KAFKA_PORT"): left running"
  elif (( ! ${#pids[@]} )); then
    log "Kafka not running"
  else
    local deadline=$(( $(date +%s) + 60 ))
    for pid in "${pids[@]}"; do
      while kill -0 "$pid" 2>/dev/null; do
        if (( $(date +%s) > deadline )); then
          log "Kafka (pid $pid) ignored SIGTERM for 60 s: killing it"
          kill -KILL "$pid"
        fi
        sleep 0.2
      done
    done
    log "Kafka stopped (${#pids[@]} node(s))"
  fi
  kafka_pid_files | xargs -r rm -f
}

# Each node found (either shape) and the topics; fails unless every node found runs.
kafka_status() {
  local file pid dir address addresses=() found=0
  while read -r file; do
    found=$(( found + 1 ))
    dir=$(dirname "$file")
    address=$(sed -n 's|^listeners=SASL_PLAINTEXT://\([^,]*\),.*|\1|p' "$dir/server.properties" 2>/dev/null)
    if pid=$(pid_in "$file"); then
      log "Kafka running (pid $pid) on $address, data ${dir#"$ROOT"/}/data"
      addresses+=("$address")
    else
      log "Kafka node in ${dir#"$ROOT"/} not running"
    fi
  done < <(kafka_pid_files)
  if (( ! ${#addresses[@]} )); then
    log "Kafka not running"
    return 1
  fi
  if command -v uv >/dev/null; then
    log "  topics: $("${UV_RUN[@]}" python deploy/topics.py --wait 5 --list \
      --bootstrap "$(IFS=,; printf '%s' "${addresses[*]}")" | tr '\n' ' ')"
  fi
  (( ${#addresses[@]} == found ))
}

# Waits until the brokers answer metadata requests, then reconciles the topics with their
# layout: on a cluster, replicated as far as the nodes allow unless TPP_TOPIC_* say otherwise.
kafka_topics() {
  TPP_TOPIC_REPLICATION_FACTOR=${TPP_TOPIC_REPLICATION_FACTOR:-$KAFKA_REPLICATION} \
    TPP_TOPIC_MIN_INSYNC_REPLICAS=${TPP_TOPIC_MIN_INSYNC_REPLICAS:-$KAFKA_MIN_ISR} \
    "${UV_RUN[@]}" python deploy/topics.py --wait 60 --prefix ""
}

# ---------------------------------------------------------------------------- migrations

# `alembic upgrade head` for each service with an alembic.ini, against TPP_<SVC>_DATABASE_URL.
migrate() { "${UV_RUN[@]}" python deploy/migrate.py "${SERVICES[@]}"; }

# ---------------------------------------------------------------------------- commands

# `up` (everything) or `up kafka` (Kafka alone).
cmd_up() {
  local pg=1
  case ${1:-} in
    '') ;;
    kafka) pg=0 ;;
    *) die "usage: $0 up [kafka]" ;;
  esac
  timed "tools present" ensure_tools
  local pg_is=none kafka_is
  (( ! pg )) || pg_is=$(pg_state)
  kafka_is=$(kafka_state)
  [[ $pg_is == taken ]] && die "$(taken "$PG_PORT" PostgreSQL)"
  [[ $kafka_is == taken ]] && die "$(taken "$KAFKA_PORT" Kafka)"
  # Another stack is used as it is: its roles, databases, migrations, topics, credentials and
  # ACLs are its owner's (this checkout's migrations may not match its databases).
  if [[ $pg_is == other ]]; then
    log "$(not_ours PostgreSQL "$PG_PORT"): using it as it is, migrations left to its owner"
    pg=0
  fi
  local kafka=1
  if [[ $kafka_is == other ]]; then
    log "$(not_ours Kafka "$KAFKA_PORT"): using it as it is"
    kafka=0
  fi
  (( ! kafka )) || timed "Kafka jars present" ensure_kafka_jars
  (( ! pg )) || timed "PostgreSQL started" pg_start
  (( ! kafka )) || timed "Kafka started ($KAFKA_BROKERS node(s))" kafka_start
  (( ! pg )) || timed "roles and databases" pg_provision
  if (( kafka )); then
    timed "Kafka ready, topics" kafka_topics
    timed "Kafka credentials" kafka_credentials
    timed "Kafka ACLs" kafka_acls
  fi
  (( ! pg )) || timed "migrations (all services)" migrate
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
  local ok=0 pid databases
  databases="SELECT string_agg(datname, ' ' ORDER BY datname) FROM pg_database WHERE NOT datistemplate"
  case $(pg_state) in
    own)
      pid=$(head -n 1 "$PG_DATA/postmaster.pid")
      log "PostgreSQL running (pid $pid) on 127.0.0.1:$PG_PORT, data ${PG_DATA#"$ROOT"/}"
      log "  databases: $(psql_admin -At -c "$databases")"
      ;;
    other)
      log "$(not_ours PostgreSQL "$PG_PORT"): up uses it, down leaves it"
      log "  databases: $(psql_url -At -c "$databases")"
      ;;
    taken) log "PostgreSQL not running: $(taken "$PG_PORT" PostgreSQL)"; ok=3 ;;
    *) log "PostgreSQL not running"; ok=3 ;;
  esac
  case $(kafka_state) in
    other)
      log "$(not_ours Kafka "$KAFKA_PORT"): up uses it, down leaves it"
      if command -v uv >/dev/null; then
        log "  topics: $("${UV_RUN[@]}" python deploy/topics.py --wait 5 --list | tr '\n' ' ')"
      fi
      ;;
    taken) log "Kafka not running: $(taken "$KAFKA_PORT" Kafka)"; ok=3 ;;
    *) kafka_status || ok=3 ;;
  esac
  return "$ok"
}

case ${1:-} in
  up) cmd_up "${2:-}" ;;
  down) cmd_down ;;
  reset) cmd_reset ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 up [kafka]|down|reset|status" >&2
    exit 2
    ;;
esac
