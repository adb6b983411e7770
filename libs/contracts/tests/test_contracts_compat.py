"""The schema compatibility checker: what breaks consumers and what does not."""

from __future__ import annotations

import copy
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, create_model
from tpp_contracts.compat import check_compatible
from tpp_contracts.schemas import committed_schemas


def problems(old: type[BaseModel], new: type[BaseModel]) -> list[str]:
    return check_compatible(
        old.model_json_schema(mode="serialization"), new.model_json_schema(mode="serialization")
    )


class Base(BaseModel):
    session_id: str
    capacity: int
    note: str | None


class ColorOld(StrEnum):
    RED = "red"
    GREEN = "green"


class ColorNew(StrEnum):
    RED = "red"
    GREEN = "green"
    BLUE = "blue"


class ColorFewer(StrEnum):
    RED = "red"


class InnerOld(BaseModel):
    city: str
    country: str


class InnerNew(BaseModel):
    city: str


class Node(BaseModel):
    label: str
    children: list[Node]
    parent: Node | None


class NodeWithoutLabel(BaseModel):
    children: list[NodeWithoutLabel]
    parent: NodeWithoutLabel | None


def test_the_same_schema_is_compatible() -> None:
    assert problems(Base, Base) == []


def test_a_removed_field_breaks() -> None:
    class New(BaseModel):
        session_id: str
        note: str | None

    assert problems(Base, New) == ["capacity: field removed"]


def test_a_renamed_field_breaks_as_removed_and_added() -> None:
    class New(BaseModel):
        session_id: str
        places: int
        note: str | None

    assert sorted(problems(Base, New)) == [
        "capacity: field removed",
        "places: new required field (old messages lack it)",
    ]


def test_a_changed_type_breaks() -> None:
    class New(BaseModel):
        session_id: str
        capacity: str
        note: str | None

    assert problems(Base, New) == ["capacity: type changed (integer → string)"]


def test_a_changed_format_breaks() -> None:
    class Old(BaseModel):
        day: date

    class New(BaseModel):
        day: datetime

    assert problems(Old, New) == ["day: constraint changed: format 'date' → 'date-time'"]


def test_a_new_required_field_breaks() -> None:
    class New(Base):
        year: int

    assert problems(Base, New) == ["year: new required field (old messages lack it)"]


def test_a_new_optional_field_is_compatible() -> None:
    class New(Base):
        year: int | None = None
        overseas: bool = False

    assert problems(Base, New) == []


def test_a_removed_enum_value_breaks() -> None:
    class Old(BaseModel):
        color: ColorOld

    class New(BaseModel):
        color: ColorFewer

    assert problems(Old, New) == ["color: enum value removed: 'green'"]


def test_an_added_enum_value_is_compatible() -> None:
    class Old(BaseModel):
        color: ColorOld
        colors: list[ColorOld]

    class New(BaseModel):
        color: ColorNew
        colors: list[ColorNew]

    assert problems(Old, New) == []


def test_an_enum_replacing_free_text_breaks() -> None:
    class Old(BaseModel):
        color: str

    class New(BaseModel):
        color: ColorOld

    assert problems(Old, New) == ["color: enum restriction added ('red', 'green')"]


def test_free_text_replacing_an_enum_is_compatible() -> None:
    # The value domain grows, as when an enum value is added.
    class Old(BaseModel):
        color: ColorOld

    class New(BaseModel):
        color: str

    assert problems(Old, New) == []


def test_a_changed_literal_breaks() -> None:
    class Old(BaseModel):
        status: Literal["draft"] = "draft"

    class New(BaseModel):
        status: Literal["published"] = "published"

    assert problems(Old, New) == ["status: const changed ('draft' → 'published')"]


def test_nullable_to_non_null_breaks() -> None:
    class New(BaseModel):
        session_id: str
        capacity: int
        note: str

    assert problems(Base, New) == ["note: nullable → non-null (old messages may hold null)"]


def test_non_null_to_nullable_breaks() -> None:
    class New(BaseModel):
        session_id: str
        capacity: int | None
        note: str | None

    assert problems(Base, New) == ["capacity: non-null → nullable (old consumers reject null)"]


def test_required_to_optional_breaks() -> None:
    class New(BaseModel):
        session_id: str
        capacity: int
        note: str | None = None

    assert problems(Base, New) == ["note: field became optional (old consumers require it)"]


def test_a_field_removed_from_a_referenced_model_breaks() -> None:
    class Old(BaseModel):
        venue: InnerOld
        previous_venue: InnerOld | None

    class New(BaseModel):
        venue: InnerNew
        previous_venue: InnerNew | None

    assert problems(Old, New) == [
        "venue.country: field removed",
        "previous_venue.country: field removed",
    ]


def test_a_changed_item_type_breaks() -> None:
    class Old(BaseModel):
        languages: list[str]

    class New(BaseModel):
        languages: list[int]

    assert problems(Old, New) == ["languages[]: type changed (string → integer)"]


def test_a_widened_union_breaks() -> None:
    class Old(BaseModel):
        year: int

    class New(BaseModel):
        year: int | str

    assert problems(Old, New) == ["year: type changed: string now possible"]


def test_a_tightened_constraint_breaks_and_a_loosened_one_does_not() -> None:
    class Loose(BaseModel):
        reason: str = Field(max_length=2000)
        score: int = Field(ge=1, le=5)

    class Tight(BaseModel):
        reason: str = Field(max_length=100)
        score: int = Field(ge=1, le=5)

    assert problems(Loose, Tight) == ["reason: constraint tightened: maxLength 2000 → 100"]
    assert problems(Tight, Loose) == []


def test_a_changed_pattern_breaks() -> None:
    class Old(BaseModel):
        country: str = Field(pattern=r"^[A-Z]{2}$")

    class New(BaseModel):
        country: str = Field(pattern=r"^[A-Z]{3}$")

    assert problems(Old, New) == [
        "country: constraint changed: pattern '^[A-Z]{2}$' → '^[A-Z]{3}$'"
    ]


def test_recursive_models_are_compared_once_per_path() -> None:
    assert problems(Node, Node) == []
    assert problems(Node, NodeWithoutLabel) == ["label: field removed"]


def test_documentation_changes_are_compatible() -> None:
    class Old(BaseModel):
        """Old words."""

        capacity: int = Field(description="places")

    class New(BaseModel):
        """New words."""

        capacity: int = Field(description="places available", title="Places")

    assert problems(Old, New) == []


def test_moving_an_event_to_another_topic_breaks() -> None:
    old = {"type": "object", "properties": {}, "x-topic": "registry.sessions.v1"}
    new = {**old, "x-topic": "registry.sessions.v2"}
    assert check_compatible(old, new) == [
        "<root>: x-topic changed ('registry.sessions.v1' → 'registry.sessions.v2')"
    ]


def test_every_committed_schema_is_compatible_with_itself() -> None:
    for name, schema in committed_schemas().items():
        assert check_compatible(schema, copy.deepcopy(schema)) == [], name


FIELD_TYPES: dict[str, Any] = {
    "int": int,
    "str": str,
    "bool": bool,
    "optional_int": int | None,
    "list_str": list[str],
    "color": ColorOld,
    "inner": InnerOld,
}
field_sets = st.dictionaries(
    st.from_regex(r"[a-z]{1,8}", fullmatch=True), st.sampled_from(sorted(FIELD_TYPES)), min_size=1
)


def _model(fields: dict[str, str], **extra: Any) -> type[BaseModel]:
    definitions: dict[str, Any] = {name: (FIELD_TYPES[kind], ...) for name, kind in fields.items()}
    model: type[BaseModel] = create_model("Generated", **definitions, **extra)
    return model


@given(fields=field_sets, added=st.sampled_from(sorted(FIELD_TYPES)))
def test_adding_an_optional_field_never_breaks(fields: dict[str, str], added: str) -> None:
    new = _model(fields, zz_added=(FIELD_TYPES[added] | None, None))
    assert problems(_model(fields), new) == []


@given(fields=field_sets, data=st.data())
def test_removing_fields_reports_exactly_those(fields: dict[str, str], data: st.DataObject) -> None:
    removed = data.draw(st.sets(st.sampled_from(sorted(fields)), min_size=1))
    kept = {name: kind for name, kind in fields.items() if name not in removed}
    assert sorted(problems(_model(fields), _model(kept))) == sorted(
        f"{name}: field removed" for name in removed
    )


@given(fields=field_sets, data=st.data())
def test_changing_a_field_type_is_reported_on_that_field(
    fields: dict[str, str], data: st.DataObject
) -> None:
    name = data.draw(st.sampled_from(sorted(fields)))
    other = data.draw(st.sampled_from(sorted(set(FIELD_TYPES) - {fields[name]})))
    assume((fields[name], other) != ("color", "str"))  # a growing value domain is compatible
    found = problems(_model(fields), _model({**fields, name: other}))
    assert found
    assert all(problem.startswith(name) for problem in found), found
