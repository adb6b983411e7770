"""Reporting settings, from ``TPP_REPORTING_*`` environment variables."""

from __future__ import annotations

import gc

from pydantic import Field
from pydantic_settings import SettingsConfigDict
from tpp_plumbing.settings import ServiceSettings


class Settings(ServiceSettings):
    """Settings of the reporting service (it publishes nothing: no relay by default)."""

    model_config = SettingsConfigDict(env_prefix="TPP_REPORTING_")

    port: int = Field(8003, description="HTTP port the reporting service listens on.")
    max_page_size: int = Field(
        5000, ge=1, description="Largest page of the sessions report (422 naming `limit` above)."
    )
    relay_enabled: bool = Field(False, description="Reporting has no outbox to relay.")
    batch_size: int = Field(20_000, description="Most events fetched at once.")
    consumer_batch_concurrency: int = Field(
        2,
        ge=1,
        description="Transactions applying a topic's batches at the same time, its partitions"
        " shared out between them: while one batch's statement runs in PostgreSQL, the next"
        " is decoded (their rows never overlap: a partition holds whole aggregates).",
    )
    gc_gen0_threshold: int = Field(
        100_000,
        description="Allocations between young-generation garbage collections. A batch"
        " decodes thousands of events at once; Python's default (700) makes the collector"
        " rescan them over and over, which cost half the ingest rate.",
    )
    lag_interval_s: float = Field(
        2.0, description="Consumer lag is measured at most this often (on demand)."
    )


def tune_gc(gen0: int) -> None:
    """Collect the young generation less often (see ``Settings.gc_gen0_threshold``)."""
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(max(gen0, 700), gen1, gen2)
