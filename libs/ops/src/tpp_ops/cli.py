"""The operators' command line: stack status, outbox, consumer lag, dead letters, replay.

    tpp-ops status                     PostgreSQL, Kafka and the three services' readiness
    tpp-ops outbox                     unsent outbox rows and the oldest one's age, per service
    tpp-ops lag [--group G]            consumer lag per partition (high-water - committed)
    tpp-ops dlq list [TOPIC]           parked messages: where from, why, how often tried
    tpp-ops dlq show TOPIC P:O         one parked message: headers and value
    tpp-ops dlq redrive TOPIC P:O...   send parked messages back to TOPIC (if true copies)
    tpp-ops dlq redrive TOPIC --pending    ...every one parked since the last --pending
    tpp-ops replay GROUP --since T     move a stopped group's offsets back to a time
    tpp-ops token --role ROLE [--organizer-id ID]   a development bearer token

Settings come from the environment (``deploy/local.env`` for the local stack): the
``TPP_KAFKA_*`` variables (as the ``TPP_OPS_KAFKA_USERNAME`` principal when set),
``TPP_PG_ADMIN_URL``, ``TPP_<SERVICE>_DATABASE_URL``, and where each service's replicas answer:
``TPP_OPS_<SERVICE>_URLS`` (comma-separated base URLs; by default ``TPP_<SERVICE>_PORT`` on
127.0.0.1 and, with ``TPP_REPLICAS=N``, the ports ``deploy/platform.sh`` gives the other
replicas: 10, 20, ... above it); ``TPP_AUTH_*`` for tokens. Topics and groups are named
without the ``TPP_KAFKA_TOPIC_PREFIX``. Each group of commands is a module of
``tpp_ops.commands``; this module assembles them.
"""

from __future__ import annotations

import typer

from tpp_ops.commands import dlq, lag, replay, status, token

# The command modules import the Kafka, PostgreSQL and HTTP clients only inside the commands
# that use them: a development token (tpp-ops token) needs none of them.
app = typer.Typer(help=__doc__.split("\n\n")[0], no_args_is_help=True)
app.add_typer(dlq.app, name="dlq")
app.command()(status.status)
app.command()(status.outbox)
app.command()(lag.lag)
app.command()(replay.replay)
app.command()(token.token)


def main() -> None:
    """Entry point of ``tpp-ops``."""
    app()


if __name__ == "__main__":
    main()
