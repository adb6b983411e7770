"""CPU per request of the enrollment service's HTTP stack alone (a tool, not part of make bench).

    set -a; . deploy/local.env; set +a
    uv run python bench/profile_stack.py            # add --py-spy to see where it goes

Builds the enrollment app as served (middleware, routes, dependencies, token check) and
calls it in process, without a server or a socket, with ``POST /sessions/{id}/enrollments``;
the use case behind the route (its two statements) answers at once, so what is measured is
what FastAPI, Starlette and our middleware cost per request. Prints the median of five
rounds of CPU time per request. Nothing is written to a database or to Kafka.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from loadgen import asgi_scope, operator_authorization

ROUNDS = 5


def build_app() -> Any:
    """The enrollment app, its enroll use case and ownership check answering at once."""
    from tpp_contracts.vocab import EnrollmentStatus
    from tpp_enrollment.api.models import Enrollment, EnrollmentIn
    from tpp_enrollment.app import create_app
    from tpp_plumbing.web import audit

    app = create_app()
    services = app.state.services

    async def enroll(session_id: uuid.UUID, data: EnrollmentIn) -> Enrollment:
        row = audit.row_in_statement(13)  # the audit row rides in the statement, as served
        if row is not None:
            row[2]()
        return Enrollment(
            id=uuid.uuid4(),
            session_id=session_id,
            trainee_id=data.trainee_id,
            status=EnrollmentStatus.ACCEPTED,
        )

    async def check_session(*_: Any) -> None:
        return None

    services.enrollments.enroll = enroll
    services.access.check_session = check_session
    return app


async def measure(requests: int) -> None:
    """Print the median CPU per request over ``ROUNDS`` rounds of ``requests``."""
    from tpp_plumbing.serve_process import tune_gc

    app = build_app()
    authorization = operator_authorization().encode()
    session_id, trainee_id = uuid.uuid4(), uuid.uuid4()
    body = json.dumps({"trainee_id": str(trainee_id)}).encode()
    path = f"/sessions/{session_id}/enrollments"
    statuses: Counter[int] = Counter()

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses[message["status"]] += 1

    async def one() -> None:
        scope = asgi_scope(
            "POST",
            path,
            [
                (b"host", b"127.0.0.1"),
                (b"authorization", authorization),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        )
        await app(scope, receive, send)

    for _ in range(requests // 5):  # warm-up: token cache, code paths
        await one()
    tune_gc()
    per_request = []
    for _ in range(ROUNDS):
        started = time.process_time()
        for _ in range(requests):
            await one()
        per_request.append(1e6 * (time.process_time() - started) / requests)
    print(
        f"HTTP stack: {statistics.median(per_request):.1f} µs of CPU per request"
        f" (rounds: {', '.join(f'{v:.1f}' for v in per_request)}); answers {dict(statuses)}"
    )


def main() -> None:
    """Measure, or run this script again under py-spy and print the hottest frames."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=10_000, help="Requests per round.")
    parser.add_argument("--py-spy", action="store_true", help="Profile with py-spy too.")
    args = parser.parse_args()
    if not args.py_spy:
        import uvloop

        uvloop.run(measure(args.requests))
        return
    from profile_service import summarize

    out = Path(__file__).parent / "results" / "profile-stack.txt.tmp"
    command = [sys.executable, __file__, "--requests", str(args.requests)]
    record = ["uvx", "py-spy", "record", "-r", "500", "-f", "raw", "-o", str(out), "--"]
    subprocess.run(record + command, check=True, env=os.environ)  # noqa: S603 - our own command
    summarize(out)


if __name__ == "__main__":
    main()
