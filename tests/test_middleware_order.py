"""Every service's app has the platform's middleware in the one order ``build_app`` gives."""

from __future__ import annotations

import importlib

import pytest

#: From the outside in: what a request meets first comes first.
ORDER = [
    "TracingMiddleware",
    "HttpMetricsMiddleware",
    "RateLimitMiddleware",
    "BodyLimitMiddleware",
    "AuditMiddleware",
    "IdempotencyMiddleware",
]


@pytest.mark.parametrize("service", ["registry", "enrollment", "reporting"])
def test_the_middleware_stack_is_the_platforms(service: str) -> None:
    app = importlib.import_module(f"tpp_{service}.app").create_app()

    # Starlette runs the middleware added last first: user_middleware lists it first.
    assert [m.cls.__name__ for m in app.user_middleware] == ORDER
