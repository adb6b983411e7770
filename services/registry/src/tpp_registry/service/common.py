"""Errors shared by the registry's use cases, as problem details."""

from __future__ import annotations

from tpp_plumbing.web.problems import ConflictError, ProblemError

from tpp_registry.domain import (
    DetailNotRevisableError,
    InvalidSessionError,
    InvalidTransitionError,
)


class PreconditionFailedError(ProblemError):
    """If-Match (or the version in the body) names a version that is no longer current."""

    status = 412
    title = "Precondition failed"


class PreconditionRequiredError(ProblemError):
    """An update without If-Match or a version: it could overwrite someone else's change."""

    status = 428
    title = "Precondition required"


def check_version(expected: int | None, current: int, *, what: str = "version") -> None:
    """412 unless ``expected`` is None or the current version."""
    if expected is not None and expected != current:
        raise PreconditionFailedError(
            f"the {what} is {current}, not {expected}: reload and retry",
            **{f"current_{what}": current},
        )


def invalid_field(field: str, detail: str) -> ProblemError:
    """A 422 problem naming the field, shaped like request validation errors."""
    return ProblemError(
        f"Invalid field(s): {field}",
        status=422,
        errors=[{"field": field, "in": "body", "detail": detail}],
    )


def domain_problem(
    error: InvalidTransitionError | InvalidSessionError | DetailNotRevisableError,
) -> ProblemError:
    """The problem a domain refusal is reported as."""
    if isinstance(error, InvalidSessionError):
        return invalid_field(error.field, error.detail)
    if isinstance(error, DetailNotRevisableError):
        return ConflictError(str(error), current_status=error.current.value, fields=error.fields)
    return ConflictError(
        str(error), current_status=error.current.value, allowed_transitions=error.allowed
    )
