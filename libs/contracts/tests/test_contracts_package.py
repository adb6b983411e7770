"""tpp-contracts as a package for outside subscribers: a wheel that installs on its own, a
version tied to its schemas, every schema named by an ``$id`` that each event points at."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import tpp_contracts
from tpp_contracts import EVENT_TYPES, decode, encode, wrap
from tpp_contracts.examples import example
from tpp_contracts.schemas import committed_schemas, digest, load
from tpp_contracts.topics import ALL as ALL_TOPICS

PACKAGE = Path(__file__).parents[1]
PYPROJECT = tomllib.loads((PACKAGE / "pyproject.toml").read_text())


def test_every_committed_schema_has_its_own_id() -> None:
    schemas = committed_schemas()
    ids = [schema["$id"] for schema in schemas.values()]
    assert len(set(ids)) == len(ids) == len(EVENT_TYPES) + 1
    for name, schema in schemas.items():
        assert load(schema["$id"]) == schema, name


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=list(EVENT_TYPES))
def test_every_event_on_the_wire_points_at_its_schema(model: type[tpp_contracts.Event]) -> None:
    envelope = json.loads(encode(wrap(example(model), source="test")))
    schema = load(envelope["dataschema"])
    assert schema["x-event-type"] == envelope["type"]
    assert schema["$id"] == envelope["dataschema"]


def test_an_unknown_schema_id_is_not_found() -> None:
    with pytest.raises(KeyError):
        load("https://elsewhere.example/tpp.registry.session.created.v1.json")
    with pytest.raises(KeyError):
        load(tpp_contracts.schema_id("tpp.registry.session.teleported.v1"))


def test_the_version_is_tied_to_the_schemas() -> None:
    version = tpp_contracts.__version__
    assert version == PYPROJECT["project"]["version"]
    major = int(version.split(".")[0])
    topic_majors = {int(topic.name.rsplit(".v", 1)[1]) for topic in ALL_TOPICS}
    assert major == max(topic_majors), "a new topic version is a new major version"
    releases = PYPROJECT["tool"]["tpp-contracts"]["schema-releases"]
    assert releases.get(version) == digest(), (
        "the committed schemas changed: release them as a new version (minor for a compatible"
        " change) and record schemas.digest() under [tool.tpp-contracts.schema-releases]"
    )


def _run(*args: str | Path, stdin: str | None = None) -> str:
    done = subprocess.run(  # noqa: S603 - uv and the test's own venv, no input from outside
        [str(a) for a in args], input=stdin, check=True, capture_output=True, text=True, timeout=300
    )
    return done.stdout


def test_the_wheel_installs_alone_and_decodes(tmp_path: Path) -> None:
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    _run("uv", "build", "--package", "tpp-contracts", "--wheel", "-o", dist)
    [wheel] = dist.glob("tpp_contracts-*.whl")
    assert wheel.name.startswith(f"tpp_contracts-{tpp_contracts.__version__}-")
    _run("uv", "venv", "-q", "--python", sys.executable, venv)
    _run("uv", "pip", "install", "-q", "--python", venv, wheel)
    model = next(iter(EVENT_TYPES.values()))
    raw = encode(wrap(example(model), source="test"))
    script = (
        "import sys, tpp_contracts as c, tpp_contracts.schemas as s\n"
        "d = c.decode(sys.stdin.buffer.read())\n"
        "print(type(d.event).__name__, s.load(d.envelope.dataschema)['$id'], c.__file__)"
    )
    out = _run(venv / "bin" / "python", "-c", script, stdin=raw.decode())
    name, schema_id, location = out.split()
    assert name == model.__name__
    assert schema_id == decode(raw).envelope.dataschema
    assert location.startswith(str(venv)), "imported from the wheel, not the workspace"
