"""Registry storage: the tables and the queries of each aggregate.

``Db``: a unit of work's connection as the queries take it, so that service/ imports no
database library.
"""

from sqlalchemy.ext.asyncio import AsyncSession

#: A unit of work's connection, as the queries take it.
Db = AsyncSession

__all__ = ["Db"]
