"""How a consumer retries a failing event, and which failures are outages, not bad events."""

from __future__ import annotations

import random
from dataclasses import dataclass

from aiokafka.errors import KafkaError

from tpp_plumbing.db.engine import is_database_outage


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a failing event is retried before it is parked."""

    max_attempts: int = 5
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failure (exponential, ±20% jitter)."""
        base = min(self.backoff_max_s, self.backoff_s * 2.0 ** max(failures - 1, 0))
        jitter: float = random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
        return base * jitter


def is_infrastructure_error(error: BaseException) -> bool:
    """True for failures to reach PostgreSQL or Kafka: retried without counting an attempt,
    so an outage delays events but never dead-letters them."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, KafkaError):
            return True
        current = current.__cause__ or current.__context__
    return is_database_outage(error)


def error_name(error: BaseException) -> str:
    """An exception's qualified type name (its message may hold row values: left out)."""
    return f"{type(error).__module__}.{type(error).__qualname__}"
