"""The verdict of a chaos run: the counts it prints and every check that failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.chaos.stack import log


@dataclass
class Verdict:
    """The counts the suite prints, and every failed check."""

    counts: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.failures.append(message)
            log(f"FAILED: {message}")
