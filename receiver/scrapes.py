"""`/metrics` rendered once for every scrape that arrives while a rendering runs.

Rendering every metric family is Python work that competes with processing for the
interpreter; a fleet of scrapers (several Prometheus servers, an agent, a person with curl)
asking at once would each pay for it, one after the other. Scrapes arriving while a rendering
runs wait for it and get its bytes; the next scrape after it starts a new one, so a scrape
never sees values older than its own arrival by more than one rendering.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from receiver.lanes import Lane


class SharedScrape:
    def __init__(self, lane: Lane, render: Callable[[], bytes], *, timeout: float) -> None:
        self._lane = lane
        self._render = render
        self._timeout = timeout
        self._running: asyncio.Future[bytes] | None = None

    async def text(self) -> bytes:
        """The exposition text; LaneUnavailable if it could not be rendered in time."""
        if self._running is None:
            self._running = asyncio.ensure_future(self._rendered())
        # Shielded: one scraper giving up must not cancel the rendering the others wait for.
        return await asyncio.shield(self._running)

    async def _rendered(self) -> bytes:
        try:
            return await self._lane.run(self._timeout, self._render)
        finally:
            self._running = None
