"""The reporting service on Kafka: it reads every event topic (its projections) in its own
group, and publishes nothing."""

from __future__ import annotations

from tpp_contracts.topics import ALL
from tpp_plumbing.messaging.declaration import Declaration

MESSAGING = Declaration("reporting", consumes=ALL)
