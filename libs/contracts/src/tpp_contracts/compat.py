"""Compatibility of two JSON Schemas of one event type: which changes would break consumers."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]

# The policy, for a schema whose messages live on in the log and are read by consumers that are
# upgraded one at a time:
# - every field an old consumer reads must still be there, with the same JSON type(s): a removed
#   or renamed field, a type change in either direction (including becoming nullable) breaks;
# - a new consumer must read every message an old producer wrote: a new required field, a
#   removed enum value, a changed const or a tightened constraint breaks;
# - growing a value domain does not break: an added enum value, a loosened constraint.
#   (A consumer that validates strictly rejects the new values until it is upgraded, so
#   upgrade consumers before producers start emitting them.)
# - titles, descriptions, defaults and examples are documentation and never break.

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
# Constraints whose change can't be ordered (regexes, ...): any new or changed value breaks.
_OPAQUE = ("pattern", "multipleOf", "format", "uniqueItems", "contentEncoding")
# Event metadata added to each model's schema: moving an event type to another topic or key
# reorders it relative to other events and strands consumers of the old topic; a new ``$id``
# orphans the ``dataschema`` of every event already in the log.
_ROOT_METADATA = ("$id", "x-event-type", "x-topic", "x-key")


def check_compatible(old_schema: Schema, new_schema: Schema) -> list[str]:
    """The changes from ``old_schema`` to ``new_schema`` that break consumers; empty if none.

    Both are JSON Schemas as pydantic writes them (``$defs`` and local ``$ref`` pointers,
    ``anyOf`` for unions and nullable fields). Each problem reads ``<path>: <what>``, where
    the path names the field (``languages[]`` for array items, ``a.b`` for nested objects).
    """
    comparison = _Comparison(old_schema, new_schema)
    for key in _ROOT_METADATA:
        if key in old_schema and old_schema.get(key) != new_schema.get(key):
            comparison.problem("", f"{key} changed ({old_schema[key]!r} → {new_schema.get(key)!r})")
    comparison.compare(old_schema, new_schema, "")
    return comparison.problems


class _Comparison:
    """One comparison: both documents (to resolve references) and the problems found."""

    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.problems: list[str] = []
        # Pairs of schemas being compared further up the path, to stop on recursive models.
        self._active: set[tuple[tuple[str, int], tuple[str, int]]] = set()

    def problem(self, path: str, what: str) -> None:
        self.problems.append(f"{path or '<root>'}: {what}")

    def compare(self, old: Schema, new: Schema, path: str) -> None:
        old_variants = _variants(old, self.old_root)
        new_variants = _variants(new, self.new_root)
        old_nullable = any(_is_null(v) for v in old_variants)
        new_nullable = any(_is_null(v) for v in new_variants)
        if old_nullable and not new_nullable:
            self.problem(path, "nullable → non-null (old messages may hold null)")
        elif new_nullable and not old_nullable:
            self.problem(path, "non-null → nullable (old consumers reject null)")
        old_values = [v for v in old_variants if not _is_null(v)]
        new_values = [v for v in new_variants if not _is_null(v)]

        if len(old_values) == 1 and len(new_values) == 1:
            self._compare_single(old_values[0], new_values[0], path)
            return
        unmatched_new = list(new_values)
        for old_value in old_values:
            match = next(
                (v for v in unmatched_new if _kind(v) == _kind(old_value)),
                next((v for v in unmatched_new if _json_type(v) == _json_type(old_value)), None),
            )
            if match is None:
                self.problem(path, f"type changed: {_describe(old_value)} no longer accepted")
                continue
            unmatched_new.remove(match)
            self._compare_single(old_value, match, path)
        for new_value in unmatched_new:
            self.problem(path, f"type changed: {_describe(new_value)} now possible")

    def _compare_single(self, old: Schema, new: Schema, path: str) -> None:
        pair = (_identity(old), _identity(new))
        if pair in self._active:
            return  # already being compared further up the path: a recursive model
        self._active.add(pair)
        try:
            self._compare_value(old, new, path)
        finally:
            self._active.discard(pair)

    def _compare_value(self, old: Schema, new: Schema, path: str) -> None:
        if _json_type(old) != _json_type(new):
            self.problem(path, f"type changed ({_describe(old)} → {_describe(new)})")
            return
        if "const" in old or "const" in new:
            if _allowed(old) != _allowed(new):
                self.problem(path, f"const changed ({_show(old)} → {_show(new)})")
                return
        elif "enum" in new:
            if "enum" not in old:
                self.problem(path, f"enum restriction added ({_show(new)})")
            else:
                for value in old["enum"]:
                    if value not in new["enum"]:
                        self.problem(path, f"enum value removed: {value!r}")
        self._compare_constraints(old, new, path)
        if _json_type(old) == "object":
            self._compare_object(old, new, path)
        elif _json_type(old) == "array":
            self._compare_array(old, new, path)

    def _compare_constraints(self, old: Schema, new: Schema, path: str) -> None:
        for key in _LOWER_BOUNDS:
            if key in new and (key not in old or new[key] > old[key]):
                self.problem(path, f"constraint tightened: {key} {old.get(key)} → {new[key]}")
        for key in _UPPER_BOUNDS:
            if key in new and (key not in old or new[key] < old[key]):
                self.problem(path, f"constraint tightened: {key} {old.get(key)} → {new[key]}")
        for key in _OPAQUE:
            if key in new and old.get(key) != new[key]:
                self.problem(path, f"constraint changed: {key} {old.get(key)!r} → {new[key]!r}")

    def _compare_object(self, old: Schema, new: Schema, path: str) -> None:
        old_props: Schema = old.get("properties", {})
        new_props: Schema = new.get("properties", {})
        old_required = set(old.get("required", ()))
        new_required = set(new.get("required", ()))
        for name, old_prop in old_props.items():
            field_path = f"{path}.{name}" if path else name
            if name not in new_props:
                self.problem(field_path, "field removed")
                continue
            if name in new_required and name not in old_required:
                self.problem(field_path, "field became required (old messages may lack it)")
            elif name in old_required and name not in new_required:
                self.problem(field_path, "field became optional (old consumers require it)")
            self.compare(old_prop, new_props[name], field_path)
        for name in new_props.keys() - old_props.keys():
            if name in new_required:
                field_path = f"{path}.{name}" if path else name
                self.problem(field_path, "new required field (old messages lack it)")
        old_extra = old.get("additionalProperties")
        new_extra = new.get("additionalProperties")
        if isinstance(old_extra, dict) and isinstance(new_extra, dict):
            self.compare(old_extra, new_extra, f"{path}{{*}}")
        elif new_extra is False and old_extra is not False:
            self.problem(path, "additional properties no longer allowed")

    def _compare_array(self, old: Schema, new: Schema, path: str) -> None:
        old_items = old.get("items")
        new_items = new.get("items")
        if isinstance(old_items, dict) and isinstance(new_items, dict):
            self.compare(old_items, new_items, f"{path}[]")
        old_prefix: list[Schema] = old.get("prefixItems", [])
        new_prefix: list[Schema] = new.get("prefixItems", [])
        if len(old_prefix) != len(new_prefix):
            self.problem(path, f"tuple length changed ({len(old_prefix)} → {len(new_prefix)})")
        for index, (old_item, new_item) in enumerate(zip(old_prefix, new_prefix, strict=False)):
            self.compare(old_item, new_item, f"{path}[{index}]")


def _resolve(schema: Schema, root: Schema) -> Schema:
    """Follow ``$ref`` (and single-member ``allOf`` wrappers) to the schema they name."""
    refs: list[str] = []
    while True:
        if "$ref" in schema:
            ref = schema["$ref"]
            if ref in refs:
                raise ValueError(f"$ref cycle through {ref}")
            refs.append(ref)
            schema = _pointer(root, ref)
        elif isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = schema["allOf"][0]
        else:
            return schema


def _identity(schema: Schema) -> tuple[str, int]:
    # The part a recursive schema shares between its visits, even once split by _variants.
    for key in ("properties", "items", "prefixItems", "additionalProperties"):
        if isinstance(schema.get(key), dict | list):
            return key, id(schema[key])
    return "schema", id(schema)


def _pointer(root: Schema, ref: str) -> Schema:
    if not ref.startswith("#"):
        raise ValueError(f"only local references are supported, not {ref!r}")
    node: Any = root
    for part in ref[1:].split("/")[1:] if ref != "#" else []:
        node = node[part.replace("~1", "/").replace("~0", "~")]
    if not isinstance(node, dict):
        raise ValueError(f"{ref!r} does not name a schema")
    return node


def _variants(schema: Schema, root: Schema) -> list[Schema]:
    """The alternatives a schema allows: ``anyOf``/``oneOf`` members and ``type`` lists."""
    schema = _resolve(schema, root)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            return [v for member in schema[union] for v in _variants(member, root)]
    types = schema.get("type")
    if isinstance(types, list):
        return [{**schema, "type": t} for t in types]
    if "enum" in schema and None in schema["enum"]:
        values = [v for v in schema["enum"] if v is not None]
        return [{"type": "null"}, *([{**schema, "enum": values}] if values else [])]
    return [schema]


def _is_null(schema: Schema) -> bool:
    return schema.get("type") == "null" or ("const" in schema and schema["const"] is None)


def _json_type(schema: Schema) -> str | None:
    declared = schema.get("type")
    if isinstance(declared, str):
        return declared
    if "properties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    values = _allowed(schema)
    if values:
        return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
            type(values[0]), "any"
        )
    return None


def _kind(schema: Schema) -> tuple[str | None, str | None]:
    """What a union member is, to pair the members of an old and a new union."""
    json_type = _json_type(schema)
    title = schema.get("title") if json_type == "object" else None
    return json_type, title


def _allowed(schema: Schema) -> list[Any]:
    if "const" in schema:
        return [schema["const"]]
    return list(schema.get("enum", []))


def _describe(schema: Schema) -> str:
    json_type, title = _kind(schema)
    text = json_type or "any"
    if "format" in schema:
        text += f" ({schema['format']})"
    if title:
        text += f" {title}"
    return text


def _show(schema: Schema) -> str:
    values = _allowed(schema)
    return ", ".join(repr(v) for v in values) if values else "any"
