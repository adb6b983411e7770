"""Reporting projections: a batch of events merged in Python, then one statement per table.

Events of one aggregate arrive in order (one key, one partition), so within a batch the last
event of an enrollment or organizer wins, and session events are guarded by the session's
version. Projections never depend on the order *between* aggregates or topics, so the live
consumer (partitions interleaved) and the rebuild (partition after partition) end with the
same rows. Every value written comes from the events; nothing reads the clock.

``_batch``: the events folded into a batch's net effect; ``_statements``: that net effect as
SQL; ``_apply``: the inbox claim, the statements and the offsets, live or in a rebuild.
"""

from tpp_reporting.store.projection._apply import (
    LIVE,
    Connection,
    claim,
    fold_unseen,
    project,
    project_live,
    record_inbox,
    save_positions,
    write,
)
from tpp_reporting.store.projection._batch import Batch, Item
from tpp_reporting.store.projection._statements import statements

__all__ = [
    "LIVE",
    "Batch",
    "Connection",
    "Item",
    "claim",
    "fold_unseen",
    "project",
    "project_live",
    "record_inbox",
    "save_positions",
    "statements",
    "write",
]
