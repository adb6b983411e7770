"""Registry domain: the session lifecycle as a pure state machine."""

from __future__ import annotations

from tpp_contracts.vocab import SessionStatus

#: Which command moves a session from which state to which.
TRANSITIONS: dict[str, dict[SessionStatus, SessionStatus]] = {
    "publish": {SessionStatus.DRAFT: SessionStatus.PUBLISHED},
}


class InvalidTransitionError(Exception):
    """A lifecycle command that the session's current state does not allow."""

    def __init__(self, command: str, current: SessionStatus) -> None:
        self.command = command
        self.current = current
        self.allowed = allowed_commands(current)
        super().__init__(f"cannot {command} a session that is {current.value}")


def allowed_commands(status: SessionStatus) -> list[str]:
    """The lifecycle commands a session in this state accepts."""
    return [command for command, moves in TRANSITIONS.items() if status in moves]


def transition(status: SessionStatus, command: str) -> SessionStatus:
    """The state after a command, or InvalidTransitionError."""
    moves = TRANSITIONS[command]
    if status not in moves:
        raise InvalidTransitionError(command, status)
    return moves[status]
