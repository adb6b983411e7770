"""Roles, token settings and development tokens: what ``tpp-ops token`` needs, and no more.

Kept apart from ``auth`` (the FastAPI side, which imports the web stack and the database
drivers) so that issuing a development token imports only PyJWT and pydantic-settings.
"""

from __future__ import annotations

import time
import uuid
from enum import StrEnum
from typing import Any

import jwt
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Role(StrEnum):
    """What a principal may do on the platform."""

    OPERATOR = "operator"
    ORGANIZER = "organizer"
    VIEWER = "viewer"


class AuthSettings(BaseSettings):
    """How bearer tokens are verified; read from ``TPP_AUTH_*`` and shared by all services.

    Give a development secret (HS256), PEM public keys, or a JWKS URL (an OIDC provider's
    ``jwks_uri``), or several: a token is accepted when any of them verifies it.
    """

    model_config = SettingsConfigDict(env_prefix="TPP_AUTH_")

    issuer: str = Field("tpp-dev", description="Required `iss` of every token.")
    audience: str = Field("tpp", description="Required `aud` (one of the token's audiences).")
    algorithms: list[str] = Field(
        default_factory=lambda: ["HS256", "RS256", "ES256"],
        description="Accepted signature algorithms (JSON list); `none` is never accepted.",
    )
    dev_secret: SecretStr | None = Field(
        None,
        description="HS256 shared secret (at least 32 bytes) for development tokens"
        " (`tpp-ops token`). Leave unset in production.",
    )
    public_keys_pem: str | None = Field(
        None, description="One or more PEM public keys (RSA or EC), concatenated."
    )
    jwks_url: str | None = Field(
        None, description="JWKS URL of an OIDC provider; keys are fetched and cached by `kid`."
    )
    jwks_cache_s: int = Field(300, ge=1, description="How long fetched JWKS keys are kept.")
    jwks_refetch_s: float = Field(
        30.0,
        ge=0,
        description="Least time between two JWKS fetches for a token whose `kid` is unknown: a"
        " rotated key is found within this, and tokens with made-up kids cannot make the service"
        " fetch the JWKS on every request.",
    )
    leeway_s: float = Field(30.0, ge=0, description="Clock skew tolerated on exp/nbf/iat.")
    role_claim: str = Field(
        "role",
        description="Claim holding the role: a string or a list (the first platform role in"
        " it wins); dotted for nested claims, e.g. `realm_access.roles`.",
    )
    organizer_claim: str = Field(
        "organizer_id", description="Claim holding an organizer's id (organizers need one)."
    )
    cache_size: int = Field(
        10_000, ge=0, description="Verified tokens remembered (until they expire); 0 = none."
    )
    cache_ttl_s: float = Field(
        300.0, gt=0, description="Longest a verified token is remembered (and never past exp)."
    )
    dev_token_ttl_s: int = Field(43_200, ge=60, description="Lifetime of development tokens.")


def dev_token(
    role: Role | str,
    organizer_id: uuid.UUID | str | None = None,
    *,
    subject: str | None = None,
    ttl_s: int | None = None,
    settings: AuthSettings | None = None,
) -> str:
    """A development token for ``role`` signed with ``TPP_AUTH_DEV_SECRET`` (HS256).

    Organizers need ``organizer_id``. Used by ``tpp-ops token``, tests, demo and benchmarks.
    """
    settings = settings or AuthSettings()
    if settings.dev_secret is None:
        raise RuntimeError("TPP_AUTH_DEV_SECRET is not set (source deploy/local.env)")
    role = Role(role)
    if role is Role.ORGANIZER and organizer_id is None:
        raise ValueError("an organizer token needs an organizer id")
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": subject or f"dev-{role.value}",
        "role": role.value,
        "iat": now,
        "exp": now + (ttl_s or settings.dev_token_ttl_s),
    }
    if organizer_id is not None:
        claims["organizer_id"] = str(organizer_id)
    return jwt.encode(claims, settings.dev_secret.get_secret_value(), algorithm="HS256")


def dev_headers(role: Role | str, organizer_id: uuid.UUID | str | None = None) -> dict[str, str]:
    """``Authorization`` header with a development token for ``role``."""
    return {"Authorization": f"Bearer {dev_token(role, organizer_id)}"}
