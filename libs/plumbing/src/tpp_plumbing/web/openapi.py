"""OpenAPI documents that tell the truth about errors and limits.

Every error is an RFC 9457 problem (``application/problem+json``): FastAPI's default 422
schema is replaced by the ``Problem`` schema, every operation with a body documents 413
(the body cap) and 400 (unparsable), every operation taking If-Match documents 400 and
412, every operation on a path with parameters documents 404, every operation that wants a
bearer token documents 401 and 403, and every
``limit`` query parameter carries the service's configured maximum.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI

from tpp_plumbing.web.problems import PROBLEM_JSON

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; extensions name the field or limit at fault.",
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem."},
        "title": {"type": "string"},
        "status": {"type": "integer", "description": "The HTTP status code."},
        "detail": {"type": "string", "description": "What went wrong, for a person."},
        "field": {"type": "string", "description": "The input at fault, when one is."},
        "limit": {"type": "string", "description": "The setting of the limit passed."},
        "errors": {
            "type": "array",
            "description": "One entry per invalid input (422).",
            "items": {
                "type": "object",
                "properties": {
                    "field": {"type": "string"},
                    "in": {"type": "string", "description": "body, query, path or header"},
                    "detail": {"type": "string"},
                },
                "required": ["field", "in", "detail"],
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
    "additionalProperties": True,
}


def problem_response(status: int, description: str | None = None) -> dict[str, Any]:
    """The OpenAPI response object of a problem with this status."""
    return {
        "description": description or HTTPStatus(status).phrase,
        "content": {PROBLEM_JSON: {"schema": PROBLEM_REF}},
    }


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the problems it may answer besides 404/413/422."""
    return {status: problem_response(status) for status in statuses}


def _document(document: dict[str, Any], max_page_size: int | None) -> None:
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["Problem"] = PROBLEM_SCHEMA
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = problem_response(422, "Invalid input: `errors` names each field")
            if "requestBody" in operation:
                responses.setdefault("400", problem_response(400, "The body cannot be parsed"))
                responses.setdefault("413", problem_response(413, "The body is too large"))
            headers = {
                p["name"].lower()
                for p in operation.get("parameters", [])
                if p.get("in") == "header"
            }
            if method in {"post", "put", "patch", "delete"}:
                # A command may conflict with the state of what it addresses.
                responses.setdefault("409", problem_response(409))
                if operation.get("security"):
                    responses.setdefault(
                        "429",
                        problem_response(429, "Too many commands from this caller (Retry-After)"),
                    )
            queries = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
            if "fmt" in queries and "200" in responses:  # ?fmt=csv: the report as a CSV file
                content = responses["200"].setdefault("content", {})
                content.setdefault("text/csv", {"schema": {"type": "string"}})
            if "if-match" in headers and method == "patch":
                responses.setdefault("428", problem_response(428, "Send If-Match or a version"))
            if "if-match" in headers:
                responses.setdefault("400", problem_response(400, "If-Match is not an ETag"))
                responses.setdefault("412", problem_response(412, "The version is not current"))
            if "{" in path:
                responses.setdefault("404", problem_response(404))
            if operation.get("security"):
                responses.setdefault("401", problem_response(401, "No valid bearer token"))
                responses.setdefault("403", problem_response(403, "Not allowed for this role"))
            for parameter in operation.get("parameters", []):
                if (
                    max_page_size is not None
                    and parameter.get("in") == "query"
                    and parameter.get("name") == "limit"
                ):
                    parameter["schema"]["maximum"] = max_page_size


def install_openapi(app: FastAPI) -> None:
    """Post-process the app's OpenAPI document (built once, on first use)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = build()
        limits = getattr(app.state, "limits", None)
        _document(document, limits.max_page_size if limits is not None else None)
        return document

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented override
