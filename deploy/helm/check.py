"""Validate the chart offline: lint, render, and check every object against its schema.

    deploy/tools.sh && uv run --no-sync python deploy/helm/check.py

For the default values and deploy/helm/values-production.yaml (and the external-Kafka form):
``helm lint --strict``, ``helm template``, then each rendered object against
- the Kubernetes API schemas (kubernetes-validate, strict: unknown fields are errors);
- Strimzi's CRD schemas (Kafka, KafkaNodePool, KafkaTopic, KafkaUser), made by Strimzi's own
  generator from its API types by deploy/tools.sh;
- schemas written from the documented APIs for CloudNativePG and the Prometheus operator
  (deploy/helm/schemas/own-crd-schemas.yaml: not the operators' own, said there);
the alert rules (deploy/observability/alerts.yml and the rendered PrometheusRule) with
``promtool check rules``; and docker-compose.yml against the Compose specification's schema.
The generated parts must match deploy/helm/generate.py.

A missing tool fails the check and says how to install it. Exit 0 only when all passed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import kubernetes_validate  # type: ignore[import-untyped]  # the package has no type hints
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "tpp"
#: Kubernetes version the objects are validated for (the chart's kubeVersion allows >= 1.29).
KUBERNETES = "1.33.0"
VALUE_SETS: dict[str, list[str]] = {
    "default values": [],
    "values-production.yaml": ["-f", str(ROOT / "deploy" / "helm" / "values-production.yaml")],
    "external Kafka": [
        "--set",
        "kafka.mode=external,kafka.external.bootstrap=kafka.example.org:9093",
        "--set",
        "kafka.external.credentialsSecret=tpp-kafka,kafka.external.caSecret=tpp-kafka-ca",
    ],
}
STRIMZI_CRDS = ("kafka", "kafkanodepool", "kafkatopic", "kafkauser")


class CheckError(Exception):
    """A check failed; the message says which and why."""


def tools() -> tuple[Path, Path, Path, Path]:
    """helm, promtool, the Strimzi CRD folder and the Compose schema, as deploy/tools.sh
    installs them."""
    printed = subprocess.run(  # noqa: S603 - our own script, fixed arguments
        [str(ROOT / "deploy" / "tools.sh"), "--print"], check=True, capture_output=True, text=True
    ).stdout.split()
    helm, promtool, crds, compose = (Path(p) for p in printed)
    missing = [str(p) for p in (helm, promtool, compose) if not p.is_file()]
    missing += [str(crds / f"{n}.yaml") for n in STRIMZI_CRDS]
    missing = [p for p in missing if not Path(p).is_file()]
    if missing:
        raise CheckError(
            f"missing: {', '.join(missing)}; install them with deploy/tools.sh"
            " (needs Go, Maven and uv; builds helm and promtool, ~11 min)"
        )
    return helm, promtool, crds, compose


def run(*command: str) -> str:
    """Run a tool; its output, or CheckError with what it said."""
    done = subprocess.run(  # noqa: S603 - the pinned tools, arguments of this file
        command, capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode:
        raise CheckError(f"{' '.join(command[:3])} ...: {done.stdout}{done.stderr}".strip())
    return done.stdout


# ------------------------------------------------------------------ CRD schemas


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """A CRD's OpenAPI v3 schema as a JSON Schema that, like the API server with strict field
    validation, refuses fields the schema does not declare."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    out.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if "properties" in out:
        out["properties"] = {k: structural(v) for k, v in out["properties"].items()}
        if "additionalProperties" not in out and not schema.get(
            "x-kubernetes-preserve-unknown-fields"
        ):
            out["additionalProperties"] = False
    if isinstance(out.get("additionalProperties"), dict):
        out["additionalProperties"] = structural(out["additionalProperties"])
    if isinstance(out.get("items"), dict):
        out["items"] = structural(out["items"])
    for key in ("oneOf", "anyOf", "allOf"):
        if key in out:
            out[key] = [structural(s) for s in out[key]]
    return out


def strimzi_validators(crds: Path) -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> validator, from Strimzi's generated CRDs."""
    validators = {}
    for name in STRIMZI_CRDS:
        crd = yaml.safe_load((crds / f"{name}.yaml").read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = structural(version["schema"]["openAPIV3Schema"])
            # metadata is the API server's, not the CRD's: its own checks come below.
            schema["properties"]["metadata"] = {"type": "object"}
            validators[(f"{group}/{version['name']}", kind)] = jsonschema_rs.Draft4Validator(schema)
    return validators


def own_validators() -> dict[tuple[str, str], Any]:
    """(apiVersion, kind) -> validator, from deploy/helm/schemas/own-crd-schemas.yaml."""
    document = yaml.safe_load((ROOT / "deploy/helm/schemas/own-crd-schemas.yaml").read_text())
    definitions = document.pop("definitions")
    validators = {}
    for key, schema in document.items():
        api_version, kind = key.rsplit("/", 1)
        validators[(api_version, kind)] = jsonschema_rs.Draft7Validator(
            {**schema, "definitions": definitions}
        )
    return validators


# ------------------------------------------------------------------ the checks


def rendered(helm: Path, arguments: list[str]) -> Iterator[dict[str, Any]]:
    """The objects `helm template` renders with these arguments."""
    text = run(str(helm), "template", "tpp", str(CHART), "--namespace", "tpp", *arguments)
    yield from (d for d in yaml.safe_load_all(text) if d)


def validate(
    document: dict[str, Any],
    crd: dict[tuple[str, str], Any],
    own: dict[tuple[str, str], Any],
) -> str:
    """Validate one object; the name of what validated it."""
    where = f"{document.get('kind')} {document.get('metadata', {}).get('name')}"
    key = (document.get("apiVersion", ""), document.get("kind", ""))
    if key in crd or key in own:
        validator, by = (crd[key], "Strimzi CRD") if key in crd else (own[key], "own schema")
        errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(document)]
        if errors:
            raise CheckError(f"{where} ({by}): " + "; ".join(errors[:5]))
        # The API server's own rules for every object's name and labels.
        metadata = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": document["metadata"]}
        kubernetes_validate.validate(metadata, KUBERNETES, strict=True)
        return by
    try:
        kubernetes_validate.validate(document, KUBERNETES, strict=True)
    except kubernetes_validate.ValidationError as error:
        raise CheckError(f"{where} (Kubernetes {KUBERNETES}): {error.message}") from error
    except kubernetes_validate.SchemaNotFoundError as error:
        raise CheckError(f"{where}: no schema for {key} (an unknown kind)") from error
    return f"Kubernetes {KUBERNETES}"


def misspelt(document: dict[str, Any], path: list[str], field: str) -> dict[str, Any]:
    """A copy of ``document`` with ``field`` added where ``path`` leads (a typo's effect)."""
    copy: dict[str, Any] = yaml.safe_load(yaml.safe_dump(document))
    target: Any = copy
    for step in path:
        target = target[step] if not isinstance(target, list) else target[int(step)]
    target[field] = 1
    return copy


def refuses_typos(
    documents: list[dict[str, Any]],
    crd: dict[tuple[str, str], Any],
    own: dict[tuple[str, str], Any],
) -> int:
    """Each validator refuses a misplaced field in an object it accepted: none is vacuous."""
    typos = {
        "Deployment": (["spec", "template", "spec", "containers", "0"], "imagePullPolice"),
        "NetworkPolicy": (["spec"], "egres"),
        "Kafka": (["spec", "kafka"], "listener"),
        "KafkaNodePool": (["spec"], "replica"),
        "KafkaTopic": (["spec"], "partition"),
        "KafkaUser": (["spec", "authorization", "acls", "0", "resource"], "pattern"),
        "Cluster": (["spec", "bootstrap", "initdb"], "ownr"),
        "Pooler": (["spec", "pgbouncer"], "pool_mode"),
    }
    tried = 0
    for document in documents:
        if document["kind"] not in typos:
            continue
        path, field = typos.pop(document["kind"])
        try:
            validate(misspelt(document, path, field), crd, own)
        except CheckError:
            tried += 1
            continue
        raise CheckError(f"{document['kind']} with {'.'.join(path)}.{field} was accepted")
    if typos:
        raise CheckError(f"no rendered {', '.join(typos)} to try a typo on")
    return tried


def check_rules(promtool: Path, groups: dict[str, Any], label: str) -> None:
    """promtool check rules on one rules file's content."""
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        yaml.safe_dump(groups, handle)
    try:
        out = run(str(promtool), "check", "rules", handle.name)
    finally:
        Path(handle.name).unlink()
    print(f"  promtool check rules ({label}): {out.strip().splitlines()[-1]}")


def check_compose(schema_file: Path) -> None:
    """docker-compose.yml against the Compose specification's schema (compose-go's); a
    misspelt key must be refused too."""
    validator = jsonschema_rs.validator_for(json.loads(schema_file.read_text()))
    document = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(document)]
    if errors:
        raise CheckError("docker-compose.yml: " + "; ".join(errors[:5]))
    if validator.is_valid(misspelt(document, ["services", "registry"], "healthchek")):
        raise CheckError("the Compose schema accepted services.registry.healthchek")
    print(f"docker-compose.yml valid ({schema_file.parent.name}/{schema_file.name})")


def main() -> int:
    """Run every check; print what was validated and how."""
    started = time.monotonic()
    try:
        helm, promtool, crds, compose = tools()
        check_compose(compose)
        run(sys.executable, "deploy/helm/generate.py", "--check")
        print("generated parts match deploy/helm/generate.py")
        print(f"tools: {helm.parent.name}, {promtool.parent.name}, {crds.name}")
        crd, own = strimzi_validators(crds), own_validators()
        check_rules(
            promtool,
            yaml.safe_load((ROOT / "deploy/observability/alerts.yml").read_text()),
            "deploy/observability/alerts.yml",
        )
        total = 0
        for label, arguments in VALUE_SETS.items():
            lint = run(str(helm), "lint", "--strict", str(CHART), *arguments)
            print(f"{label}: {lint.strip().splitlines()[-1]}")
            by: Counter[str] = Counter()
            documents = list(rendered(helm, arguments))
            if label == "default values":
                n = refuses_typos(documents, crd, own)
                print(f"  the validators refuse a misplaced field in each of {n} kinds")
            for document in documents:
                by[validate(document, crd, own)] += 1
                if document["kind"] == "PrometheusRule":
                    check_rules(promtool, document["spec"], f"PrometheusRule, {label}")
            total += sum(by.values())
            counts = ", ".join(f"{n} by {k}" for k, n in sorted(by.items()))
            print(f"  {sum(by.values())} objects valid: {counts}")
    except CheckError as error:
        print(f"deploy/helm/check.py: FAILED: {error}", file=sys.stderr)
        return 1
    seconds = time.monotonic() - started
    print(f"chart valid: {total} objects in {len(VALUE_SETS)} renderings, {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
