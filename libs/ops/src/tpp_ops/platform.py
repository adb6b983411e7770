"""The platform's services, as each declares itself on Kafka."""

from __future__ import annotations

from tpp_enrollment.messaging import MESSAGING as ENROLLMENT
from tpp_plumbing.messaging.declaration import Declaration
from tpp_registry.messaging import MESSAGING as REGISTRY
from tpp_reporting.messaging import MESSAGING as REPORTING

DECLARATIONS: tuple[Declaration, ...] = (REGISTRY, ENROLLMENT, REPORTING)
#: The services, by name (their settings are ``TPP_<SERVICE>_*``).
SERVICES = tuple(d.service for d in DECLARATIONS)
#: The consumer groups of the services that consume (before the topic prefix).
CONSUMER_GROUPS = tuple(d.group for d in DECLARATIONS if d.consumes)
