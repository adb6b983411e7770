"""How long a replica takes to start: from the command to ``/health/ready`` answering 200.

    set -a; . deploy/local.env; set +a
    uv run --no-sync python bench/replica_start.py --runs 5 [--before PATH]

Starts enrollment and registry in turn as Compose, Helm and the cluster fault run do
(``tpp_plumbing.serve ... --workers 1``, on scratch databases and topics), each run waiting for
readiness, then stopping the replica with SIGTERM. ``--before`` names a folder holding another
version's ``libs/plumbing/src`` (``git archive <commit> libs | tar -x -C PATH``): its runs
alternate with this checkout's, on the same databases (a shared machine: compare medians).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from harness import ROOT, Context, scratch_database, scratch_topics
from servers import free_port

SERVICES = ("enrollment", "registry")
READY_WITHIN_S = 120.0


async def start_to_ready(service: str, env: dict[str, str], log: Path) -> float:
    """Seconds from starting one replica to its readiness answering 200."""
    port = free_port()
    command = [sys.executable, "-m", "tpp_plumbing.serve", f"tpp_{service}.app:create_app"]
    command += ["--factory", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    started = time.monotonic()
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603, ASYNC220 - our own command line
            [*command, "--no-access-log"],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            while time.monotonic() - started < READY_WITHIN_S:
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited: see {log}")
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        return time.monotonic() - started
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{service} not ready within {READY_WITHIN_S:.0f} s")
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.to_thread(process.wait, 40)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.wait, 5)


async def measure(runs: int, before: Path | None) -> None:
    ctx = Context()
    versions = {"this": {}} | (
        {"before": {"PYTHONPATH": str(before / "libs/plumbing/src")}} if before else {}
    )
    times: dict[tuple[str, str], list[float]] = {}
    async with (
        scratch_database(ctx, "enrollment") as enrollment_url,
        scratch_database(ctx, "registry") as registry_url,
        scratch_topics(ctx) as prefix,
    ):
        urls = {"enrollment": enrollment_url, "registry": registry_url}
        log = ROOT / "bench" / "results" / "replica_start.log.tmp"
        log.parent.mkdir(parents=True, exist_ok=True)
        for run in range(runs):
            for version, extra in versions.items():
                for service in SERVICES:
                    env = (
                        ctx.env
                        | extra
                        | {
                            "TPP_KAFKA_TOPIC_PREFIX": prefix,
                            f"TPP_{service.upper()}_DATABASE_URL": urls[service],
                        }
                    )
                    took = await start_to_ready(service, env, log)
                    times.setdefault((version, service), []).append(took)
                    print(f"run {run} {version:6} {service:10} ready in {took:5.2f} s", flush=True)
    for (version, service), values in times.items():
        print(
            f"{version:6} {service:10} median {statistics.median(values):5.2f} s"
            f" (min {min(values):.2f}, max {max(values):.2f}, n={len(values)})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--before", type=Path, default=None, help="another version's checkout")
    args = parser.parse_args()
    asyncio.run(measure(args.runs, args.before))


if __name__ == "__main__":
    main()
