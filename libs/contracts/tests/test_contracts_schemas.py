"""The committed JSON Schemas: in sync with the models (the CI check), and write/check behaviour."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from tpp_contracts import EVENT_TYPES
from tpp_contracts.schemas import (
    ENVELOPE,
    SCHEMA_DIR,
    SchemaIncompatibleError,
    check,
    committed_schemas,
    current_schemas,
    render,
    write,
)
from tpp_contracts.schemas.__main__ import main

ACCEPTED = "tpp.enrollment.enrollment.accepted.v1"


def test_committed_schemas_match_the_models() -> None:
    assert check() == []


def test_there_is_a_schema_per_event_type_and_for_the_envelope() -> None:
    assert set(committed_schemas()) == {*EVENT_TYPES, ENVELOPE}


def test_committed_schemas_say_where_each_event_travels() -> None:
    for name, model in EVENT_TYPES.items():
        schema = committed_schemas()[name]
        assert schema["x-event-type"] == name
        assert schema["x-topic"] == model.topic.name
        assert schema["x-key"] == model.topic.key


def test_the_check_command_passes_on_the_repository(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    assert "up to date" in capsys.readouterr().out


def _copy(tmp_path: Path) -> Path:
    directory = tmp_path / "schemas"
    directory.mkdir()
    for path in SCHEMA_DIR.glob("*.json"):
        shutil.copy(path, directory)
    return directory


def _edit(
    directory: Path, name: str, *, add: dict[str, Any] | None = None, remove: tuple[str, ...] = ()
) -> None:
    """Change a committed schema: ``add`` required fields, ``remove`` fields."""
    path = directory / f"{name}.json"
    schema = json.loads(path.read_text())
    schema["properties"].update(add or {})
    schema["required"] = [*schema["required"], *(add or {})]
    for field in remove:
        del schema["properties"][field]
    path.write_text(render(schema))


def test_a_missing_schema_is_a_new_event_type(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    (directory / f"{ACCEPTED}.json").unlink()
    [problem] = check(directory)
    assert problem.startswith(f"{ACCEPTED}: new event type: run `")
    assert "write" in problem


def test_a_schema_without_model_is_a_removal(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    shutil.copy(directory / f"{ACCEPTED}.json", directory / "tpp.enrollment.gone.v1.json")
    [problem] = check(directory)
    assert problem.startswith("tpp.enrollment.gone.v1: committed schema has no model")


def test_an_unreviewed_compatible_change_fails(tmp_path: Path) -> None:
    # The committed schema predates the optional field `promoted_from_waitlist`.
    directory = _copy(tmp_path)
    _edit(directory, ACCEPTED, remove=("promoted_from_waitlist",))
    assert check(directory) == [
        f"{ACCEPTED}: schema changed compatibly: "
        "run `uv run python -m tpp_contracts.schemas write` to commit it"
    ]


def test_an_incompatible_change_fails_with_its_problems(tmp_path: Path) -> None:
    # The committed schema has a field the model no longer has.
    directory = _copy(tmp_path)
    _edit(directory, ACCEPTED, add={"seat": {"type": "integer"}})
    assert check(directory) == [f"{ACCEPTED}: breaking change: seat: field removed"]


def test_a_reformatted_file_fails(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    path = directory / f"{ACCEPTED}.json"
    path.write_text(json.dumps(json.loads(path.read_text()), indent=4))
    [problem] = check(directory)
    assert problem.startswith(f"{ACCEPTED}: file is not formatted")


def test_write_commits_compatible_changes_and_new_types(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    _edit(directory, ACCEPTED, remove=("promoted_from_waitlist",))
    (directory / f"{ENVELOPE}.json").unlink()
    result = write(directory)
    assert sorted(result.written) == sorted([ACCEPTED, ENVELOPE])
    assert result.removed == []
    assert check(directory) == []
    assert write(directory).written == []


def test_write_refuses_breaking_changes_and_writes_nothing(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    _edit(directory, ACCEPTED, add={"seat": {"type": "integer"}})
    shutil.copy(directory / f"{ACCEPTED}.json", directory / "tpp.enrollment.gone.v1.json")
    (directory / f"{ENVELOPE}.json").unlink()
    with pytest.raises(SchemaIncompatibleError) as caught:
        write(directory)
    assert caught.value.problems == [
        "tpp.enrollment.gone.v1: event type removed",
        f"{ACCEPTED}: seat: field removed",
    ]
    assert not (directory / f"{ENVELOPE}.json").exists()


def test_write_can_be_told_to_accept_breaking_changes(tmp_path: Path) -> None:
    directory = _copy(tmp_path)
    shutil.copy(directory / f"{ACCEPTED}.json", directory / "tpp.enrollment.gone.v1.json")
    result = write(directory, allow_breaking=True)
    assert result.removed == ["tpp.enrollment.gone.v1"]
    assert set(committed_schemas(directory)) == set(current_schemas())
