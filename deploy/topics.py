"""Wait for Kafka, then reconcile the platform's topics (and their dead-letter twins) with the
layout of the contracts and the TPP_TOPIC_* settings: see tpp_plumbing.messaging.topic_reconcile.

    uv run python deploy/topics.py                      # wait up to 60 s, reconcile, report
    uv run python deploy/topics.py --list               # print the topics that exist
    uv run python deploy/topics.py --wait 0 --list      # fail at once if the broker is down
    uv run python deploy/topics.py --prefix t123-       # the same topics under a test prefix
    uv run python deploy/topics.py --allow-partition-increase
"""

from __future__ import annotations

import asyncio
import os
import sys

from tpp_plumbing.messaging.topic_reconcile import main

if __name__ == "__main__":
    try:
        sys.exit(asyncio.run(main()))
    except BrokenPipeError:
        # The reader left (``--list | head``): stop quietly, as a Unix tool does; stdout goes
        # to /dev/null so that the interpreter's last flush at exit does not complain again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
