"""``tpp-ops token``: a development bearer token (needs no Kafka, database or web client)."""

from __future__ import annotations

from typing import Annotated

import typer
from tpp_plumbing.web.tokens import Role, dev_token

from tpp_ops.commands._shared import fail


def token(
    role: Annotated[Role, typer.Option(help="The token's role.")],
    organizer_id: Annotated[
        str | None, typer.Option(help="The organizer's id (required for --role organizer).")
    ] = None,
    subject: Annotated[str | None, typer.Option(help="The `sub` claim (dev-<role>).")] = None,
    ttl: Annotated[
        int | None, typer.Option(help="Lifetime in seconds (TPP_AUTH_DEV_TOKEN_TTL_S).")
    ] = None,
) -> None:
    """Print a development token signed with TPP_AUTH_DEV_SECRET (for local use only)."""
    if role is Role.ORGANIZER and organizer_id is None:
        fail("--organizer-id is required for an organizer token")
    try:
        value = dev_token(role, organizer_id, subject=subject, ttl_s=ttl)
    except (RuntimeError, ValueError) as error:
        fail(str(error))
    typer.echo(value)
