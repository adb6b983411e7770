"""The committed AsyncAPI documents (``docs/asyncapi/``): one per service, from its
declaration, and one for outside subscribers, rendered with the local stack's settings
(``deploy/local.env``).

    python -m tpp_ops.asyncapi write|check
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from tpp_plumbing.messaging.acl import SUBSCRIBER
from tpp_plumbing.messaging.asyncapi import document, render, subscriber_document
from tpp_plumbing.settings import KafkaSettings

from tpp_ops.platform import DECLARATIONS

ROOT = Path(__file__).resolve().parents[4]
DIRECTORY = ROOT / "docs" / "asyncapi"
LOCAL_ENV = ROOT / "deploy" / "local.env"
WRITE_COMMAND = "uv run python -m tpp_ops.asyncapi write"
#: The documents: each service's, and the outside subscribers' (role ``subscriber``).
DOCUMENTS = (*(d.service for d in DECLARATIONS), SUBSCRIBER)


def local_kafka(env_file: Path = LOCAL_ENV) -> KafkaSettings:
    """The local stack's Kafka settings (``deploy/local.env``), as a subscriber sees them."""
    values: dict[str, str] = {}
    for line in env_file.read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value
    return KafkaSettings.from_env(
        {k: v for k, v in values.items() if k.startswith("TPP_KAFKA_")}
        | {"TPP_KAFKA_USERNAME": values.get("TPP_SUBSCRIBER_KAFKA_USERNAME", "subscriber")}
    )


def committed(directory: Path = DIRECTORY) -> dict[str, str]:
    """The documents as they should be committed, by file name."""
    kafka = local_kafka()
    documents = {d.service: document(d, kafka) for d in DECLARATIONS}
    documents[SUBSCRIBER] = subscriber_document(kafka)
    return {f"{name}.json": render(documents[name]) for name in DOCUMENTS}


def check(directory: Path = DIRECTORY) -> list[str]:
    """Every committed document that differs from what the contracts give; empty when in sync."""
    problems = []
    for file, text in committed(directory).items():
        path = directory / file
        if not path.is_file() or path.read_text() != text:
            problems.append(f"docs/asyncapi/{file}: out of date: run `{WRITE_COMMAND}`")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    """Write or check the committed documents."""
    parser = argparse.ArgumentParser(prog="python -m tpp_ops.asyncapi")
    parser.add_argument("command", choices=("write", "check"))
    args = parser.parse_args(argv)
    if args.command == "check":
        problems = check()
        print("\n".join(problems) or "AsyncAPI documents are up to date")
        return 1 if problems else 0
    DIRECTORY.mkdir(parents=True, exist_ok=True)
    for file, text in committed().items():
        (DIRECTORY / file).write_text(text)
        print(f"wrote docs/asyncapi/{file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
