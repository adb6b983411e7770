"""Bearer JWT authentication and role checks, shared by every service.

A token is verified once (signature, issuer, audience, expiry) and its principal cached by
the token string until it expires, so a request with a token seen before pays a dictionary
lookup. Keys come from the settings (an HS256 development secret, PEM public keys) or from
an OIDC provider's JWKS URL. Roles: ``operator`` (everything), ``organizer`` (its own
organizer record and sessions, bound to ``organizer_id``), ``viewer`` (reports).

401 (with ``WWW-Authenticate: Bearer``) without a valid token, 403 for a role or an
organizer that may not do what it asked; both as RFC 9457 problem documents.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
from fastapi import Depends, FastAPI, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tpp_plumbing.web.problems import ProblemError
from tpp_plumbing.web.tokens import AuthSettings as AuthSettings
from tpp_plumbing.web.tokens import Role as Role
from tpp_plumbing.web.tokens import dev_headers as dev_headers
from tpp_plumbing.web.tokens import dev_token as dev_token


@dataclass(frozen=True, slots=True)
class Principal:
    """Who sent a request: the token's subject, role and (for organizers) organizer id."""

    subject: str
    role: Role
    organizer_id: uuid.UUID | None = None

    @property
    def is_operator(self) -> bool:
        return self.role is Role.OPERATOR

    def owns(self, organizer_id: uuid.UUID | None) -> bool:
        """An operator owns everything; an organizer only what belongs to its organizer id."""
        if self.role is Role.OPERATOR:
            return True
        return self.role is Role.ORGANIZER and organizer_id == self.organizer_id


class UnauthenticatedError(ProblemError):
    """No token, or one that does not verify: 401 with a Bearer challenge."""

    status = 401
    title = "Unauthorized"

    def __init__(self, detail: str, *, headers: dict[str, str], **extensions: Any) -> None:
        super().__init__(detail, **extensions)
        self.headers = headers


class ForbiddenError(ProblemError):
    """The principal's role, or organizer, may not do this."""

    status = 403
    title = "Forbidden"


def _challenge(error: str, description: str) -> dict[str, str]:
    # RFC 6750 §3: the challenge names the error; the problem document says the same.
    return {
        "WWW-Authenticate": f'Bearer realm="tpp", error="{error}",'
        f' error_description="{description}"'
    }


def _claim(claims: dict[str, Any], path: str) -> Any:
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _pem_keys(text: str) -> list[Any]:
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    blocks = re.findall(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", text, re.DOTALL)
    return [load_pem_public_key(block.encode()) for block in blocks]


class TokenVerifier:
    """Verifies bearer tokens and maps their claims to a Principal; caches the result."""

    def __init__(self, settings: AuthSettings) -> None:
        self.settings = settings
        self._algorithms = [a for a in settings.algorithms if a.lower() != "none"]
        self._keys: list[tuple[Any, list[str]]] = []
        if settings.dev_secret is not None:
            self._keys.append((settings.dev_secret.get_secret_value(), ["HS256"]))
        if settings.public_keys_pem:
            asymmetric = [a for a in self._algorithms if not a.startswith("HS")]
            self._keys.extend((key, asymmetric) for key in _pem_keys(settings.public_keys_pem))
        self._jwks = (
            jwt.PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=settings.jwks_cache_s)
            if settings.jwks_url
            else None
        )
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._refetched_at: float | None = None  # monotonic time of the last forced fetch

    @property
    def configured(self) -> bool:
        """Whether any key source is set (otherwise every token is refused)."""
        return bool(self._keys) or self._jwks is not None

    def cached(self, token: str) -> Principal | None:
        """The principal of a token verified before and not yet expired."""
        hit = self._cache.get(token)
        if hit is None:
            return None
        if hit[1] <= time.time():
            self._cache.pop(token, None)
            return None
        return hit[0]

    async def verify(self, token: str) -> Principal:
        """The token's principal, or UnauthenticatedError/ForbiddenError."""
        principal = self.cached(token)
        if principal is not None:
            return principal
        key = await self._jwks_key(token) if self._jwks is not None else None
        if key is not None:
            claims = self._decode(token, [(key, self._algorithms)])
        else:
            claims = self._decode(token, self._keys)
        principal = self._principal(claims)
        self._remember(token, principal, claims)
        return principal

    async def _jwks_key(self, token: str) -> Any | None:
        """The provider's key for the token's ``kid`` (None: not the provider's token).

        The key set is kept ``jwks_cache_s``; a kid it lacks makes it fetched again, at most
        once every ``jwks_refetch_s`` (PyJWKClient alone fetches for every unknown kid).
        """
        assert self._jwks is not None
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.InvalidTokenError:
            return None  # not a JWT: the static keys' decoding says why
        if not isinstance(kid, str) or not kid:
            return None
        jwks = self._jwks
        try:
            # PyJWKClient fetches with urllib: off the event loop.
            found = jwks.match_kid(await asyncio.to_thread(jwks.get_signing_keys), kid)
            now = time.monotonic()
            due = self._refetched_at is None or now - self._refetched_at >= (
                self.settings.jwks_refetch_s
            )
            if found is None and due:
                self._refetched_at = now
                found = jwks.match_kid(await asyncio.to_thread(jwks.get_signing_keys, True), kid)
        except jwt.PyJWKClientError:
            return None  # the provider is unreachable or its answer unusable
        return None if found is None else found.key

    def verify_sync(self, token: str) -> Principal:
        """Like ``verify`` for keys from settings (no JWKS fetch); for tools and benchmarks."""
        principal = self.cached(token)
        if principal is None:
            claims = self._decode(token, self._keys)
            principal = self._principal(claims)
            self._remember(token, principal, claims)
        return principal

    def _decode(self, token: str, keys: list[tuple[Any, list[str]]]) -> dict[str, Any]:
        if not keys:
            raise UnauthenticatedError(
                "no key is configured to verify tokens",
                headers=_challenge("invalid_token", "no key"),
            )
        s = self.settings
        last: Exception | None = None
        for key, algorithms in keys:
            allowed = [a for a in algorithms if a in self._algorithms]
            if not allowed:
                continue
            try:
                claims: dict[str, Any] = jwt.decode(
                    token,
                    key,
                    algorithms=allowed,
                    audience=s.audience,
                    issuer=s.issuer,
                    leeway=s.leeway_s,
                    options={"require": ["exp", "iss", "aud", "sub"]},
                )
                return claims
            except jwt.InvalidSignatureError as error:
                last = error  # maybe another key
            except jwt.InvalidAlgorithmError as error:
                last = error
            except jwt.ExpiredSignatureError as error:
                raise UnauthenticatedError(
                    "the token has expired", headers=_challenge("invalid_token", "expired")
                ) from error
            except jwt.InvalidTokenError as error:
                # The type names what is wrong (audience, issuer, claims); never the token.
                raise UnauthenticatedError(
                    f"the token is not valid ({type(error).__name__})",
                    headers=_challenge("invalid_token", type(error).__name__),
                ) from error
        raise UnauthenticatedError(
            f"the token's signature does not verify ({type(last).__name__})",
            headers=_challenge("invalid_token", "signature"),
        )

    def _principal(self, claims: dict[str, Any]) -> Principal:
        s = self.settings
        found = _claim(claims, s.role_claim)
        values = found if isinstance(found, list) else [found]
        roles = [Role(v) for v in values if v in Role._value2member_map_]
        if not roles:
            raise ForbiddenError("the token carries no platform role", claim=s.role_claim)
        role = roles[0]
        organizer_id = None
        if role is Role.ORGANIZER:
            raw = _claim(claims, s.organizer_claim)
            try:
                organizer_id = uuid.UUID(str(raw))
            except ValueError as error:
                raise UnauthenticatedError(
                    f"an organizer token needs an organizer id in `{s.organizer_claim}`",
                    headers=_challenge("invalid_token", "organizer id"),
                ) from error
        return Principal(str(claims["sub"]), role, organizer_id)

    def _remember(self, token: str, principal: Principal, claims: dict[str, Any]) -> None:
        size = self.settings.cache_size
        if size == 0:
            return
        until = min(float(claims["exp"]), time.time() + self.settings.cache_ttl_s)
        self._cache[token] = (principal, until)
        while len(self._cache) > size:
            self._cache.popitem(last=False)


# ------------------------------------------------------------------ FastAPI


_BEARER_DESCRIPTION = "A JWT from the identity provider, or `tpp-ops token --role ...` locally."
_bearer = HTTPBearer(auto_error=False, description=_BEARER_DESCRIPTION)


def install_auth(app: FastAPI, settings: AuthSettings) -> TokenVerifier:
    """Give the app a verifier (``app.state.auth``) for the dependencies below."""
    verifier = TokenVerifier(settings)
    app.state.auth = verifier
    return verifier


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The request's principal (401 without a valid bearer token)."""
    if credentials is None:
        raise UnauthenticatedError(
            "send a bearer token: Authorization: Bearer <JWT>",
            headers={"WWW-Authenticate": 'Bearer realm="tpp"'},
        )
    verifier: TokenVerifier = request.app.state.auth
    principal = await verifier.verify(credentials.credentials)
    request.state.principal = principal
    return principal


async def principal_of(scope: MutableMapping[str, Any]) -> Principal | None:
    """The verified principal of an ASGI request, or None (for middleware; never raises)."""
    app = scope.get("app")
    verifier: TokenVerifier | None = getattr(getattr(app, "state", None), "auth", None)
    if verifier is None:
        return None
    raw = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
    scheme, _, token = raw.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return await verifier.verify(token.strip())
    except ProblemError:
        return None


class RoleCheck(HTTPBearer):
    """A dependency admitting the given roles only (401 without a valid token, 403 for the
    other roles), documented in OpenAPI as the bearer scheme.

    It is the bearer scheme itself, not a function depending on it: FastAPI resolves every
    dependency level on every request, and every route has one of these.
    """

    def __init__(self, *roles: Role) -> None:
        super().__init__(
            auto_error=False, scheme_name=type(_bearer).__name__, description=_BEARER_DESCRIPTION
        )
        self.roles = frozenset(roles)
        self._names = ", ".join(r.value for r in roles)

    async def __call__(self, request: Request) -> Principal:  # type: ignore[override]
        principal = await authenticated(request, await super().__call__(request))
        if principal.role not in self.roles:
            raise ForbiddenError(
                f"the {principal.role.value} role may not do this (allowed: {self._names})",
                role=principal.role.value,
            )
        return principal


def allow(*roles: Role) -> RoleCheck:
    """A dependency admitting the given roles only (403 for the others)."""
    return RoleCheck(*roles)


def require_owner(principal: Principal, organizer_id: uuid.UUID | None, what: str) -> None:
    """403 unless the principal is an operator or the organizer ``organizer_id``."""
    if not principal.owns(organizer_id):
        raise ForbiddenError(f"this {what} belongs to another organizer", role=principal.role.value)


Operator = Annotated[Principal, Depends(allow(Role.OPERATOR))]
OperatorOrOrganizer = Annotated[Principal, Depends(allow(Role.OPERATOR, Role.ORGANIZER))]
Reader = Annotated[Principal, Depends(allow(Role.OPERATOR, Role.VIEWER))]
