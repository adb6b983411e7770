"""The committed JSON Schemas of the events and the envelope: generate, write and check them."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tpp_contracts import EVENT_TYPES, Envelope
from tpp_contracts.compat import check_compatible
from tpp_contracts.envelope import SCHEMA_BASE, schema_id

#: Where the committed schemas live: ``<event type>.json`` per event, and ``envelope.json``.
SCHEMA_DIR = Path(__file__).parent
ENVELOPE = "envelope"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
WRITE_COMMAND = "uv run python -m tpp_contracts.schemas write"


class SchemaIncompatibleError(Exception):
    """Writing the schemas would commit changes that break consumers."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass
class WriteResult:
    """What ``write`` changed in the schema directory, by schema name."""

    written: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def schema_of(model: type[BaseModel], name: str) -> dict[str, Any]:
    """A model's JSON Schema as committed: the serialization schema, i.e. the wire format,
    named ``name`` (its ``$id``, and the file name).

    Serialization mode describes what producers emit (a Decimal is a string, every field
    with a default is present), which is what a consumer in any language reads.
    """
    return {
        "$schema": DIALECT,
        "$id": schema_id(name),
        **model.model_json_schema(mode="serialization"),
    }


def current_schemas() -> dict[str, dict[str, Any]]:
    """The schemas the models define now, by name (event type, or ``envelope``)."""
    schemas = {ENVELOPE: schema_of(Envelope, ENVELOPE)}
    schemas.update({name: schema_of(model, name) for name, model in sorted(EVENT_TYPES.items())})
    return schemas


def load(uri: str) -> dict[str, Any]:
    """The committed schema whose ``$id`` (an envelope's ``dataschema``) is ``uri``.

    Raises:
        KeyError: no schema of this package has that ``$id``.
    """
    name = uri.removeprefix(SCHEMA_BASE).removesuffix(".json")
    path = SCHEMA_DIR / f"{name}.json"
    if not uri.startswith(SCHEMA_BASE) or "/" in name or not path.is_file():
        raise KeyError(uri)
    schema: dict[str, Any] = json.loads(path.read_text())
    return schema


def committed_schemas(directory: Path = SCHEMA_DIR) -> dict[str, dict[str, Any]]:
    """The schemas committed in ``directory``, by name."""
    return {path.stem: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def render(schema: dict[str, Any]) -> str:
    """The text of a committed schema file."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def digest(directory: Path = SCHEMA_DIR) -> str:
    """SHA-256 of the committed schemas: what a package version is released with."""
    hashed = hashlib.sha256()
    for name, schema in committed_schemas(directory).items():
        hashed.update(name.encode() + b"\0" + render(schema).encode())
    return hashed.hexdigest()


def check(directory: Path = SCHEMA_DIR) -> list[str]:
    """Every difference between the committed schemas and the models; empty when in sync.

    Identical is fine. A compatible change must still be committed (reviewed) with
    ``write``; an incompatible change, a removed event type or a new event type without a
    committed schema is reported as such.
    """
    problems: list[str] = []
    current = current_schemas()
    committed = committed_schemas(directory)
    for name in sorted(committed.keys() - current.keys()):
        problems.append(
            f"{name}: committed schema has no model: removing an event type breaks its "
            "consumers (keep it until they have moved to its successor)"
        )
    for name in sorted(current.keys() - committed.keys()):
        problems.append(f"{name}: new event type: run `{WRITE_COMMAND}` to commit its schema")
    for name in sorted(current.keys() & committed.keys()):
        new, old = current[name], committed[name]
        if old == new:
            if (directory / f"{name}.json").read_text() != render(new):
                problems.append(f"{name}: file is not formatted as `{WRITE_COMMAND}` writes it")
            continue
        breaking = check_compatible(old, new)
        if breaking:
            problems.extend(f"{name}: breaking change: {problem}" for problem in breaking)
        else:
            problems.append(
                f"{name}: schema changed compatibly: run `{WRITE_COMMAND}` to commit it"
            )
    return problems


def write(directory: Path = SCHEMA_DIR, *, allow_breaking: bool = False) -> WriteResult:
    """Commit the models' schemas to ``directory`` (files that changed, and stale ones).

    Raises:
        SchemaIncompatibleError: a change breaks consumers (or removes an event type) and
            ``allow_breaking`` is not set; nothing is written then.
    """
    current = current_schemas()
    committed = committed_schemas(directory)
    stale = sorted(committed.keys() - current.keys())
    if not allow_breaking:
        problems = [f"{name}: event type removed" for name in stale]
        for name in sorted(current.keys() & committed.keys()):
            problems.extend(
                f"{name}: {problem}" for problem in check_compatible(committed[name], current[name])
            )
        if problems:
            raise SchemaIncompatibleError(problems)
    result = WriteResult()
    for name, schema in current.items():
        path = directory / f"{name}.json"
        text = render(schema)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            result.written.append(name)
    for name in stale:
        (directory / f"{name}.json").unlink()
        result.removed.append(name)
    return result
