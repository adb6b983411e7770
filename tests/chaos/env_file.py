"""The chaos stack's env file: deploy/local.env with its ports moved off the shared stack's."""

from __future__ import annotations

import os
import re

#: Ports of deploy/local.env moved out of the shared stack's way. ``TPP_CHAOS_SLOT=N`` adds
#: N * 100 to each (a second chaos stack side by side, in ``.chaos-N/``).
SLOT = int(os.environ.get("TPP_CHAOS_SLOT", "0"))
PORT_MAP = {
    local: chaos + 100 * SLOT
    for local, chaos in {
        9092: 19092,
        9093: 19093,
        55432: 55433,
        8001: 18001,
        8002: 18002,
        8003: 18003,
    }.items()
}


def parse_env(text: str) -> dict[str, str]:
    """``KEY=VALUE`` lines of an env file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        values[key.strip()] = value.strip()
    return values


def derive_env(text: str, *, nodes: int = 1) -> str:
    """deploy/local.env with every known port moved (``PORT_MAP``); all else unchanged. With
    ``nodes`` > 1, a Kafka cluster: every node in the bootstrap list (node N on the first
    node's ports + 2 (N-1), as deploy/stack.sh lays it out)."""

    def move(match: re.Match[str]) -> str:
        port = int(match.group(2))
        return f"{match.group(1)}{PORT_MAP.get(port, port)}"

    out = []
    for line in text.splitlines():
        if line.strip().startswith("#") or "=" not in line:
            out.append(line)
            continue
        key, _, value = line.partition("=")
        if key.strip().endswith("_PORT") and value.strip().isdigit():
            value = str(PORT_MAP.get(int(value.strip()), int(value.strip())))
        else:
            value = re.sub(r"(:)(\d{2,5})\b", move, value)
        out.append(f"{key}={value}")
    controller = PORT_MAP[9093]
    out.append(f"TPP_KAFKA_CONTROLLER_PORT={controller}")
    if nodes > 1:
        first = PORT_MAP[9092]
        bootstrap = ",".join(f"127.0.0.1:{first + 2 * n}" for n in range(nodes))
        out = [line for line in out if not line.startswith("TPP_KAFKA_BOOTSTRAP=")]
        out += [f"TPP_KAFKA_BOOTSTRAP={bootstrap}", f"TPP_KAFKA_BROKERS={nodes}"]
    return "\n".join(out) + "\n"
