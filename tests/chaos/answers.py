"""What an answer of the platform says beyond its status (its problem title and fields)."""

from __future__ import annotations

from typing import Any

import httpx


def in_progress(response: httpx.Response) -> bool:
    return response.status_code == 409 and _title(response) == "Request in progress"


def answer_lost(response: httpx.Response) -> bool:
    return response.status_code == 409 and _title(response) == "Request applied, answer lost"


def already_enrolled(response: httpx.Response) -> bool:
    """A refusal naming the trainee's enrollment there (or saying so, when it could not)."""
    if response.status_code != 409:
        return False
    body = _body(response)
    return "enrollment_status" in body or "already enrolled" in str(body.get("detail", ""))


def _title(response: httpx.Response) -> str:
    return str(_body(response).get("title", ""))


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
