"""The public catalogue's page cache: rendered pages kept until a published session changes.

The catalogue is read far more often than published sessions change (a few dozen a year
are published; the public searches all day). A page is rendered once (JSON bytes and a
strong ETag from their hash) and served from memory until invalidated:

- by this process right after it commits a change that touches the catalogue, and
- by a database trigger's ``NOTIFY registry_catalogue`` (migration 0302) on every change
  of a published session or of an organizer's name, whoever made it (another worker, an
  import, SQL): each worker LISTENs and clears its pages when one arrives.

Pages are cached only while the LISTEN connection is up (a lost or new connection clears
them too, as notifications may have been missed meanwhile). A page computed across an
invalidation is not kept: its read may predate the change.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from tpp_plumbing.db.reads import ReadPool

#: The channel the registry's catalogue trigger notifies (migration 0302).
CHANNEL = "registry_catalogue"


@dataclass(frozen=True, slots=True)
class CachedPage:
    """A rendered page and its strong validator."""

    body: bytes
    etag: str


def etag_of(body: bytes) -> str:
    """A strong ETag: a hash of the exact bytes served."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class CatalogueCache:
    """Rendered catalogue pages by query, cleared whenever the catalogue may have changed."""

    def __init__(self, reads: ReadPool, *, max_pages: int = 4096) -> None:
        self._reads = reads
        self._max = max_pages
        self._pages: OrderedDict[Any, CachedPage] = OrderedDict()
        self.generation = 0
        self.hits = 0
        self.misses = 0

    def invalidate(self) -> None:
        """Forget every page (the catalogue changed, or may have)."""
        self.generation += 1
        self._pages.clear()

    async def page(self, key: Any, render: Callable[[], Awaitable[bytes]]) -> CachedPage:
        """The page of ``key``: from memory, or rendered now (and kept if still current)."""
        self._reads.listen(CHANNEL, self.invalidate)
        found = self._pages.get(key)
        if found is not None:
            self._pages.move_to_end(key)
            self.hits += 1
            return found
        self.misses += 1
        generation = self.generation
        body = await render()
        page = CachedPage(body, etag_of(body))
        if generation == self.generation and self._reads.listening(CHANNEL):
            self._pages[key] = page
            if len(self._pages) > self._max:
                self._pages.popitem(last=False)
        return page
