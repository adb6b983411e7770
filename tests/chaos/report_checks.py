"""Reporting's API, on every replica, against the enrollments the load generator confirmed."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import httpx

from tests.chaos.client import operator_token
from tests.chaos.load import Load
from tests.chaos.stack import ChaosStack


async def compare_reports(
    stack: ChaosStack,
    load: Load,
    per_session: Counter[str],
    enrollments: int,
    trainees: int,
) -> list[str]:
    """Reporting's API against the confirmed set (polled: reports are cached briefly), on
    every replica (any replica answers any report)."""
    problems: list[str] = []
    for replica in stack.replicas_of("reporting"):
        found = await _compare_reports_at(replica.url, load, per_session, enrollments, trainees)
        problems += [f"{replica.name}: {problem}" for problem in found]
    return problems


async def _compare_reports_at(
    url: str,
    load: Load,
    per_session: Counter[str],
    enrollments: int,
    trainees: int,
) -> list[str]:
    problems: list[str] = []
    deadline = time.monotonic() + 30
    auth = {"Authorization": operator_token()}
    async with httpx.AsyncClient(timeout=30, headers=auth) as client:
        while True:
            problems = []
            rows: dict[str, int] = {}
            status = 200
            for offset in range(0, 1_000_000, 5_000):  # every page (5,000 rows at most each)
                page = await client.get(
                    f"{url}/reports/sessions",
                    params={"year": load.year, "limit": 5_000, "offset": offset},
                )
                status = page.status_code
                if status != 200:
                    break
                rows.update({r["session_id"]: r["enrolled"] for r in page.json()["rows"]})
                if len(page.json()["rows"]) < 5_000:
                    break
            year = await client.get(f"{url}/reports/years/{load.year}")
            if status != 200 or year.status_code != 200:
                problems.append(f"HTTP {status}/{year.status_code}")
            else:
                for session_id in set(rows) | set(per_session):
                    if rows.get(session_id, 0) != per_session.get(session_id, 0):
                        problems.append(
                            f"session {session_id}: reporting {rows.get(session_id, 0)},"
                            f" confirmed {per_session.get(session_id, 0)}"
                        )
                figures = year.json()
                if figures["enrollments"] != enrollments:
                    problems.append(f"year enrollments {figures['enrollments']} != {enrollments}")
                if figures["trainees_enrolled"] != trainees:
                    problems.append(f"year trainees {figures['trainees_enrolled']} != {trainees}")
            if not problems or time.monotonic() > deadline:
                return problems
            await asyncio.sleep(1)
