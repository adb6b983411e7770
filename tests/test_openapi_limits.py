"""Every input the three APIs take is bounded, and every error they document is a problem.

Walks the OpenAPI documents: each string a client sends (bodies, query, headers) has a
maxLength unless an enum or a format already bounds it; each list has maxItems; each integer
has a maximum within PostgreSQL's integer; each ``limit`` has the configured maximum; each
4xx is application/problem+json.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from tpp_enrollment.app import create_app as enrollment_app
from tpp_enrollment.config import Settings as EnrollmentSettings
from tpp_registry.app import create_app as registry_app
from tpp_registry.config import Settings as RegistrySettings
from tpp_reporting.app import create_app as reporting_app
from tpp_reporting.config import Settings as ReportingSettings

URL = "postgresql+asyncpg://nobody@127.0.0.1:1/none"  # never connected to: documents only
INT32 = 2**31 - 1
BOUNDED_FORMATS = {"uuid", "date", "date-time", "binary", "email"}


def apps() -> dict[str, FastAPI]:
    return {
        "registry": registry_app(RegistrySettings(database_url=URL, max_page_size=123)),
        "enrollment": enrollment_app(EnrollmentSettings(database_url=URL, max_page_size=123)),
        "reporting": reporting_app(ReportingSettings(database_url=URL, max_page_size=123)),
    }


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = document["components"]["schemas"][name]
    return schema


def unbounded(document: dict[str, Any], schema: dict[str, Any], where: str) -> list[str]:
    """The places under ``schema`` where a client could send an unbounded string or list."""
    schema = _resolve(document, schema)
    found: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        options = schema.get(key, [])
        decimal = any(o.get("type") == "number" for o in options)
        for i, option in enumerate(options):
            if decimal and option == {"type": "string"}:
                continue  # a Decimal may come as a string; max_digits bounds it
            found += unbounded(document, option, f"{where}<{i}>")
    kind = schema.get("type")
    if kind == "string" and not (
        "maxLength" in schema
        or "enum" in schema
        or "const" in schema
        or schema.get("format") in BOUNDED_FORMATS
        or "contentMediaType" in schema  # an uploaded file: CSV_MAX_BYTES caps it (413)
    ):
        found.append(where)
    if kind == "integer" and schema.get("maximum", INT32 + 1) > INT32:
        found.append(f"{where}(integer)")  # PostgreSQL integer columns stop at 2**31 - 1
    if kind == "array":
        if "maxItems" not in schema:
            found.append(f"{where}[]")
        found += unbounded(document, schema.get("items", {}), f"{where}[]")
    if kind == "object" or "properties" in schema:
        for name, prop in schema.get("properties", {}).items():
            found += unbounded(document, prop, f"{where}.{name}")
    return found


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    return {name: app.openapi() for name, app in apps().items()}


@pytest.mark.parametrize("service", ["registry", "enrollment", "reporting"])
def test_every_string_and_list_a_client_sends_is_bounded(
    documents: dict[str, dict[str, Any]], service: str
) -> None:
    document = documents[service]
    found: list[str] = []
    inputs = 0
    for path, item in document["paths"].items():
        for method, operation in item.items():
            label = f"{method.upper()} {path}"
            for parameter in operation.get("parameters", []):
                inputs += 1
                found += unbounded(
                    document, parameter["schema"], f"{label} {parameter['in']}:{parameter['name']}"
                )
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                inputs += 1
                found += unbounded(document, content["schema"], f"{label} body({media})")
    assert inputs > 5
    assert found == [], "unbounded inputs: " + ", ".join(found)


@pytest.mark.parametrize("service", ["registry", "enrollment", "reporting"])
def test_page_sizes_are_the_configured_maximum_and_errors_are_problems(
    documents: dict[str, dict[str, Any]], service: str
) -> None:
    document = documents[service]
    limits = [
        parameter["schema"]
        for item in document["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["name"] == "limit"
    ]
    assert limits, "every service has a paged list"
    assert all(schema["maximum"] == 123 and schema["minimum"] == 1 for schema in limits)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    content = response["content"]
                    assert list(content) == ["application/problem+json"], (method, path, status)
            if "requestBody" in operation:
                assert "413" in operation["responses"], (method, path)
