"""A service's messaging declaration: its group and principal, and only its own topics."""

from __future__ import annotations

import pytest
from tpp_contracts.topics import ENROLLMENTS, SESSIONS
from tpp_plumbing.messaging.declaration import Declaration


def test_group_and_principal_are_the_service_unless_declared() -> None:
    assert Declaration("enrollment", consumes=(SESSIONS,)).group == "enrollment"
    assert Declaration("enrollment").principal == "enrollment"
    declared = Declaration("enrollment", group="enrollment.v2", principal="enroll")
    assert (declared.group, declared.principal) == ("enrollment.v2", "enroll")


def test_a_service_may_not_publish_another_ones_topic() -> None:
    with pytest.raises(ValueError, match=r"registry may publish only registry\.\*"):
        Declaration("registry", publishes=(ENROLLMENTS,))
