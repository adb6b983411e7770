"""Enrollment storage: the tables and the queries of each aggregate; never commits.

``Db``, ``Row``, ``Record`` and ``RawRow``: what a use case holds of the store's types (the
connection it hands to the queries, the rows they return), so that service/ imports no
database library.
"""

from typing import Any

import asyncpg
from sqlalchemy import Row as _Row
from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncSession

#: A unit of work's connection, as the queries take it.
Db = AsyncSession
#: A row read by column name (``row["id"]``): a read-only mapping.
Row = RowMapping
#: A row read by attribute (``row.id``).
Record = _Row[Any]
#: A row of the fast path's raw queries, read by column name.
RawRow = asyncpg.Record

__all__ = ["Db", "RawRow", "Record", "Row"]
