"""What every benchmark module shares: figures, the run context, scratch databases, servers.

Figures and the context are defined here; the helpers live in ``scratch.py``, ``servers.py``
and ``cpu_meter.py`` and are imported from here.

A benchmark module (``bench/bench_<name>.py``) defines ``run(ctx: Context) -> list[Figure]``
(plain or ``async``); ``bench/run.py`` runs each module in its own process and prints and saves
their figures together. See bench/README.md.
"""

from __future__ import annotations

import os
import statistics
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cpu_meter import CpuMeter, cpu_reading, cpu_spent
from scratch import libpq, scratch_database, scratch_topics
from servers import (
    NO_RATE_LIMITS,
    ROOT,
    START_S,
    UVICORN_FLAGS,
    WORKERS,
    Server,
    free_port,
    serve,
    service_env,
)
from tpp_plumbing.settings import KafkaSettings

__all__ = [
    "NO_RATE_LIMITS",
    "ROOT",
    "START_S",
    "UVICORN_FLAGS",
    "WORKERS",
    "Context",
    "CpuMeter",
    "Figure",
    "Server",
    "cpu_reading",
    "cpu_spent",
    "free_port",
    "libpq",
    "median_figure",
    "meets",
    "rounded",
    "scratch_database",
    "scratch_topics",
    "serve",
    "service_env",
]


@dataclass
class Figure:
    """One measured figure.

    ``target`` is a comparison with the issue's target (``">= 1000"``, ``"<= 20"``); ``ceiling``
    names a figure of the same run (usually a ``ceiling.*`` one) that ``value`` is divided by
    to give ``ratio``; ``runs`` holds the value of each repetition when ``value`` is a median.
    """

    name: str
    value: float
    unit: str
    target: str | None = None
    ceiling: str | None = None
    runs: list[float] = field(default_factory=list)
    note: str = ""
    ratio: float | None = None  # filled in by run.py
    met: bool | None = None  # filled in by run.py

    def as_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return asdict(self)


def median_figure(name: str, runs: Sequence[float], unit: str, **kwargs: Any) -> Figure:
    """A figure whose value is the median of its runs."""
    values = [float(v) for v in runs]
    value = statistics.median(values) if values else float("nan")  # not measured this time
    return Figure(name, value, unit, runs=values, **kwargs)


def meets(value: float, target: str) -> bool:
    """Whether a value meets a target written as ``">= 1000"`` or ``"<= 20"``."""
    op, _, number = target.partition(" ")
    bound = float(number)
    return value >= bound if op == ">=" else value <= bound


@dataclass
class Context:
    """What run.py hands a benchmark module."""

    quick: bool = False  # a short smoke run (make bench ARGS=--quick)
    env: dict[str, str] = field(default_factory=lambda: dict(os.environ))
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    @property
    def admin_url(self) -> str:
        """libpq URL of a PostgreSQL superuser of the local stack."""
        return self.env["TPP_PG_ADMIN_URL"]

    @property
    def kafka(self) -> KafkaSettings:
        """Kafka of the local stack, as its admin (TPP_KAFKA_*)."""
        return KafkaSettings.from_env(self.env)

    def service_url(self, service: str) -> str:
        """The SQLAlchemy URL of a service's own database (from deploy/local.env)."""
        return self.env[f"TPP_{service.upper()}_DATABASE_URL"]


def rounded(values: Iterable[float], digits: int = 1) -> list[float]:
    """Values rounded for the JSON file."""
    return [round(v, digits) for v in values]
