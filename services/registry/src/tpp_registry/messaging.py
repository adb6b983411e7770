"""The registry on Kafka: it publishes its organizers, plans and sessions, and reads nothing."""

from __future__ import annotations

from tpp_contracts.topics import ORGANIZERS, PLANS, SESSIONS
from tpp_plumbing.messaging.declaration import Declaration

MESSAGING = Declaration("registry", publishes=(ORGANIZERS, PLANS, SESSIONS))
