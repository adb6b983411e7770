#!/usr/bin/env bash
# Placeholder until the platform script lands: `up` brings the local stack up (PostgreSQL,
# Kafka, topics, migrations); the services themselves are not started yet.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case ${1:-} in
  up) exec "$ROOT/deploy/stack.sh" up ;;
  down) echo "[platform] placeholder: no services to stop" ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
