"""Bearer token verification: keys, claims, the cache, 401/403 problem documents."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import time
import uuid
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, FastAPI
from pydantic import SecretStr
from tpp_plumbing.web.auth import (
    AuthSettings,
    ForbiddenError,
    Principal,
    Role,
    TokenVerifier,
    UnauthenticatedError,
    allow,
    dev_token,
    install_auth,
)
from tpp_plumbing.web.problems import install_problem_handlers

SECRET = "a-development-secret-of-at-least-32-bytes"
SETTINGS = AuthSettings(dev_secret=SecretStr(SECRET), issuer="tpp-dev", audience="tpp")


def token(**overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": "tpp-dev", "aud": "tpp", "sub": "u1", "role": "operator", "exp": now + 60}
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_dev_token_round_trips_for_every_role() -> None:
    verifier = TokenVerifier(SETTINGS)
    organizer = uuid.uuid4()

    for role in Role:
        issued = dev_token(role, organizer if role is Role.ORGANIZER else None, settings=SETTINGS)
        principal = await verifier.verify(issued)
        assert principal.role is role
        assert principal.organizer_id == (organizer if role is Role.ORGANIZER else None)


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "someone-else"},
        {"aud": "another-api"},
        {"exp": int(time.time()) - 3600},
        {"sub": None},
        {"exp": None},
    ],
    ids=["issuer", "audience", "expired", "no-subject", "no-expiry"],
)
async def test_tokens_failing_a_check_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(UnauthenticatedError):
        await TokenVerifier(SETTINGS).verify(token(**overrides))


async def test_a_token_signed_with_another_key_or_none_is_refused() -> None:
    forged = jwt.encode(
        {
            "iss": "tpp-dev",
            "aud": "tpp",
            "sub": "x",
            "role": "operator",
            "exp": int(time.time()) + 60,
        },
        "another-secret-of-at-least-32-bytes!",
    )
    unsigned = jwt.encode(
        {
            "iss": "tpp-dev",
            "aud": "tpp",
            "sub": "x",
            "role": "operator",
            "exp": int(time.time()) + 60,
        },
        "",
        algorithm="none",
    )
    for bad in (forged, unsigned, "not-a-jwt"):
        with pytest.raises(UnauthenticatedError):
            await TokenVerifier(SETTINGS).verify(bad)


async def test_organizer_tokens_need_an_organizer_id_and_roles_must_be_known() -> None:
    verifier = TokenVerifier(SETTINGS)
    with pytest.raises(UnauthenticatedError):
        await verifier.verify(token(role="organizer"))
    with pytest.raises(ForbiddenError):
        await verifier.verify(token(role="admin"))


async def test_rs256_public_keys_and_nested_list_role_claims() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other_pem = other.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = AuthSettings(
        public_keys_pem=(other_pem + pem).decode(),
        role_claim="realm_access.roles",
        issuer="https://idp.example",
        audience="tpp",
    )
    claims = {
        "iss": "https://idp.example",
        "aud": ["account", "tpp"],
        "sub": "alice",
        "realm_access": {"roles": ["offline_access", "viewer"]},
        "exp": int(time.time()) + 60,
    }
    principal = await TokenVerifier(settings).verify(jwt.encode(claims, key, algorithm="RS256"))

    assert principal == Principal("alice", Role.VIEWER)
    # An HS256 token "signed" with the public key text is not accepted (algorithm confusion).
    with pytest.raises(UnauthenticatedError):
        await TokenVerifier(settings).verify(token(iss="https://idp.example"))


async def test_verified_tokens_are_cached_until_they_expire() -> None:
    verifier = TokenVerifier(SETTINGS.model_copy(update={"leeway_s": 0}))
    issued = token(exp=int(time.time()) + 2)
    await verifier.verify(issued)

    assert verifier.cached(issued) is not None
    await asyncio.sleep(2.1)  # the token's own expiry, not a tuned wait
    assert verifier.cached(issued) is None
    with pytest.raises(UnauthenticatedError):
        await verifier.verify(issued)


async def test_cache_is_bounded() -> None:
    verifier = TokenVerifier(AuthSettings(dev_secret=SecretStr(SECRET), cache_size=3))
    tokens = [token(sub=f"u{i}") for i in range(5)]
    for issued in tokens:
        await verifier.verify(issued)

    assert [verifier.cached(t) is not None for t in tokens] == [False, False, True, True, True]


def app() -> FastAPI:
    application = FastAPI()
    install_problem_handlers(application)
    install_auth(application, SETTINGS)

    @application.get("/reports")
    async def reports(
        who: Annotated[Principal, Depends(allow(Role.OPERATOR, Role.VIEWER))],
    ) -> dict[str, str]:
        return {"role": who.role.value}

    return application


async def test_http_401_with_challenge_and_403_as_problem_documents() -> None:
    transport = httpx.ASGITransport(app=app())
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        missing = await client.get("/reports")
        invalid = await client.get("/reports", headers={"Authorization": "Bearer nope"})
        wrong_role = await client.get(
            "/reports",
            headers={
                "Authorization": f"Bearer {token(role='organizer', organizer_id=str(uuid.uuid4()))}"
            },
        )
        allowed = await client.get(
            "/reports", headers={"Authorization": f"Bearer {token(role='viewer')}"}
        )

    for response in (missing, invalid):
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["content-type"] == "application/problem+json"
    assert 'error="invalid_token"' in invalid.headers["www-authenticate"]
    assert wrong_role.status_code == 403
    assert wrong_role.json()["title"] == "Forbidden"
    assert allowed.json() == {"role": "viewer"}


def test_measure_verify_cost() -> None:
    """Per-request cost of a cached and an uncached verification, printed (see bench/RESULTS.md)."""
    verifier = TokenVerifier(SETTINGS)
    issued = token()
    verifier.verify_sync(issued)
    n = 20_000
    start = time.perf_counter()
    for _ in range(n):
        verifier.verify_sync(issued)
    cached_us = (time.perf_counter() - start) / n * 1e6
    tokens = [token(sub=f"s{i}") for i in range(2000)]
    start = time.perf_counter()
    for issued in tokens:
        TokenVerifier.verify_sync(verifier, issued)
    uncached_us = (time.perf_counter() - start) / len(tokens) * 1e6
    print(f"\ntoken verification: cached {cached_us:.2f} µs, first time {uncached_us:.1f} µs")
    # Generous bounds on a shared 2-core machine: a cache hit is a dict lookup.
    assert cached_us < 50
    assert uncached_us < 2000


class _Jwks:
    """An OIDC provider's JWKS endpoint on loopback (its keys can be rotated)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        jwks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.fetches += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def publish(self, kid: str, key: rsa.RSAPrivateKey) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.keys.append(jwk | {"kid": kid, "use": "sig", "alg": "RS256"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _idp_token(key: rsa.RSAPrivateKey, kid: str, role: str = "operator") -> str:
    claims = {
        "iss": "https://idp.example",
        "aud": "tpp",
        "sub": "carol",
        "role": role,
        "exp": int(time.time()) + 60,
    }
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


async def test_keys_from_a_jwks_url_verify_tokens_and_follow_a_key_rotation() -> None:
    jwks = _Jwks()
    try:
        first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks.publish("k1", first)
        settings = AuthSettings(
            jwks_url=jwks.url, issuer="https://idp.example", audience="tpp", jwks_refetch_s=0.2
        )
        verifier = TokenVerifier(settings)

        assert await verifier.verify(_idp_token(first, "k1")) == Principal("carol", Role.OPERATOR)
        # Signed by a key the provider never published, under a known or an unknown kid.
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for kid in ("k1", "k9"):
            with pytest.raises(UnauthenticatedError):
                await verifier.verify(_idp_token(stranger, kid, role="viewer"))
        # The provider rotates: a token under the new kid is verified after a refetch.
        second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks.publish("k2", second)
        await asyncio.sleep(0.25)  # jwks_refetch_s after the fetch for k9
        fetched = jwks.fetches
        principal = await verifier.verify(_idp_token(second, "k2", role="viewer"))
        assert principal == Principal("carol", Role.VIEWER)
        assert jwks.fetches > fetched
    finally:
        jwks.close()


async def test_tokens_with_made_up_kids_do_not_make_the_service_fetch_the_jwks_each_time() -> None:
    jwks = _Jwks()
    try:
        known = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks.publish("k1", known)
        settings = AuthSettings(jwks_url=jwks.url, issuer="https://idp.example", audience="tpp")
        verifier = TokenVerifier(settings)
        assert await verifier.verify(_idp_token(known, "k1")) == Principal("carol", Role.OPERATOR)
        before = jwks.fetches

        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for n in range(20):
            with pytest.raises(UnauthenticatedError):
                await verifier.verify(_idp_token(stranger, f"made-up-{n}"))

        # One fetch looked for the first unknown kid; the others waited for jwks_refetch_s.
        assert jwks.fetches - before == 1
        # The provider's own tokens still verify, from the kept key set.
        assert await verifier.verify(_idp_token(known, "k1", role="viewer")) == Principal(
            "carol", Role.VIEWER
        )
        assert jwks.fetches - before == 1
    finally:
        jwks.close()


def test_role_check_is_documented_as_the_bearer_scheme() -> None:
    document = app().openapi()

    assert document["paths"]["/reports"]["get"]["security"] == [{"HTTPBearer": []}]
    scheme = document["components"]["securitySchemes"]["HTTPBearer"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    assert "tpp-ops token" in scheme["description"]
    parameters = document["paths"]["/reports"]["get"].get("parameters", [])
    assert parameters == []  # the check reads the header itself: no "request" parameter leaks
