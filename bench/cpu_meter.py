"""Where the CPU went during a block: the server under test, PostgreSQL, Kafka, the rest."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servers import Server


@dataclass(frozen=True, slots=True)
class _Cpu:
    name: str
    parent: int
    started: int  # clock ticks after boot: a pid used again starts later
    own: float  # utime + stime, seconds
    children: float  # cutime + cstime: its children that ended and were reaped


def cpu_reading() -> dict[int, _Cpu]:
    """Every process's CPU so far, by pid (for ``cpu_spent``)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, _Cpu] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
            fields = rest.split()
            found[int(stat.parent.name)] = _Cpu(
                head.split("(", 1)[1],
                int(fields[1]),
                int(fields[19]),
                (int(fields[11]) + int(fields[12])) / ticks,
                (int(fields[13]) + int(fields[14])) / ticks,
            )
        except (OSError, IndexError, ValueError):
            continue
    return found


def cpu_spent(before: dict[int, _Cpu], after: dict[int, _Cpu]) -> dict[str, float]:
    """CPU seconds spent between two readings, summed by command name.

    A process that ended in between is no longer listed; its parent counts it among its
    children once it reaped it (a PostgreSQL backend: the postmaster, the same name). What
    it had spent before the first reading is taken off its parent's sum again, so that
    only the time between the readings counts.
    """
    spent: dict[str, float] = {}
    for pid, now in after.items():
        then = before.get(pid)
        # (Not by name: a kernel worker's name says what it is doing at the moment.)
        if then is not None and then.started == now.started:
            used = now.own - then.own + now.children - then.children
        else:  # started in between (or a new process with a reused pid)
            used = now.own + now.children
        spent[now.name] = spent.get(now.name, 0.0) + used
    for pid, then in before.items():
        parent, prior = after.get(then.parent), before.get(then.parent)
        if pid not in after and parent and prior and parent.started == prior.started:
            spent[parent.name] = spent.get(parent.name, 0.0) - then.own - then.children
    return spent


class CpuMeter:
    """Cores used by the server under test, PostgreSQL and everything else during a block."""

    def __init__(self, server: Server | None = None) -> None:
        self.server = server
        self.cores: dict[str, float] = {}

    def __enter__(self) -> CpuMeter:
        self._t0 = time.perf_counter()
        self._all0 = cpu_reading()
        self._pids0 = self.server.cpu_by_pid() if self.server else {}
        self._self0 = time.process_time()
        return self

    def __exit__(self, *_: object) -> None:
        elapsed = time.perf_counter() - self._t0
        spent = cpu_spent(self._all0, cpu_reading())
        pids1 = self.server.cpu_by_pid() if self.server else {}
        # By process: one that ended in the block (the relay child of a service that has no
        # relay process, once it looked) must not take its earlier CPU off the total.
        server = sum(pids1[p] - self._pids0.get(p, 0.0) for p in pids1)
        self.by_process = [
            round((pids1[p] - self._pids0.get(p, 0.0)) / elapsed, 2) for p in sorted(pids1)
        ]
        load = time.process_time() - self._self0
        postgres = spent.get("postgres", 0.0)
        total = sum(spent.values())
        #: CPU seconds spent in the block; the Kafka broker is the machine's only Java process.
        self.seconds = {
            "server": server,
            "postgres": postgres,
            "loadgen": load,
            "kafka": spent.get("java", 0.0),
            "other": max(0.0, total - server - postgres - load),
        }
        self.cores = {k: v / elapsed for k, v in self.seconds.items() if k != "kafka"}

    def __str__(self) -> str:
        parts = ", ".join(f"{k} {v:.2f}" for k, v in self.cores.items())
        return f"{parts} cores (server processes {self.by_process})"
