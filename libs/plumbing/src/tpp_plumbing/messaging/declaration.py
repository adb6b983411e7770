"""What one service publishes and consumes on Kafka, and as whom.

Each service states it once (``tpp_<service>.messaging``); its runtime names its consumer
group from it, its AsyncAPI document is built from it, and so are the platform's ACLs and the
operators' tool (``tpp_ops``), which gather every service's declaration. The plumbing itself
names no service.
"""

from __future__ import annotations

from dataclasses import dataclass

from tpp_contracts.topics import Topic


@dataclass(frozen=True, slots=True)
class Declaration:
    """A service's place on Kafka: its topics, its consumer group and its principal."""

    #: The service's name: its topics are ``<service>.*``.
    service: str
    #: The topics it writes (through its outbox relay), each named ``<service>.*``.
    publishes: tuple[Topic, ...] = ()
    #: The topics it reads, in its own consumer group.
    consumes: tuple[Topic, ...] = ()
    #: Its consumer group, before the topic prefix (default: the service's name).
    group: str = ""
    #: The role it runs as on Kafka, whose user is ``TPP_<PRINCIPAL>_KAFKA_USERNAME``
    #: (default: the service's name).
    principal: str = ""

    def __post_init__(self) -> None:
        if not self.group:
            object.__setattr__(self, "group", self.service)
        if not self.principal:
            object.__setattr__(self, "principal", self.service)
        foreign = [t.name for t in self.publishes if not t.name.startswith(f"{self.service}.")]
        if foreign:
            raise ValueError(f"{self.service} may publish only {self.service}.*, not {foreign}")
