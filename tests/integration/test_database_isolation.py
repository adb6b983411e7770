"""Each service's login role reaches its own database and no other."""

from __future__ import annotations

import itertools

import asyncpg
import pytest
from sqlalchemy.engine import make_url
from tpp_plumbing.db.engine import asyncpg_dsn
from tpp_testkit import SERVICES, Infrastructure

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("role", "database"), list(itertools.permutations(SERVICES, 2)))
async def test_a_service_role_cannot_connect_to_another_services_database(
    infrastructure: Infrastructure, role: str, database: str
) -> None:
    own = make_url(infrastructure.service_urls[role])
    other = make_url(infrastructure.service_urls[database]).database
    if own.username == make_url(infrastructure.service_urls[database]).username:
        pytest.skip("testcontainers: one superuser owns every database, no roles to separate")
    with pytest.raises(asyncpg.InsufficientPrivilegeError):
        await asyncpg.connect(asyncpg_dsn(own.set(database=other).render_as_string(False)))


@pytest.mark.parametrize("service", SERVICES)
async def test_a_service_role_connects_to_its_own_database(
    infrastructure: Infrastructure, service: str
) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(infrastructure.service_urls[service]))
    try:
        assert (
            await conn.fetchval("SELECT current_user")
            == make_url(infrastructure.service_urls[service]).username
        )
    finally:
        await conn.close()
