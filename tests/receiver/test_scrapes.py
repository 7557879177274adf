"""Scrapes that arrive while `/metrics` is being rendered share that rendering."""

from __future__ import annotations

import asyncio
import threading

from receiver.lanes import Lane
from receiver.scrapes import SharedScrape


def test_scrapes_during_a_rendering_share_it_and_the_next_one_renders_anew() -> None:
    renders: list[int] = []
    release = threading.Event()

    def render() -> bytes:
        renders.append(len(renders))
        release.wait(10)
        return f"render {len(renders)}".encode()

    async def scrape_many() -> tuple[list[bytes], bytes]:
        shared = SharedScrape(Lane("metrics-test", 2, 8), render, timeout=10)
        waiting = [asyncio.ensure_future(shared.text()) for _ in range(20)]
        while not renders:
            await asyncio.sleep(0.01)
        release.set()
        together = await asyncio.gather(*waiting)
        return together, await shared.text()

    together, later = asyncio.run(scrape_many())

    assert together == [b"render 1"] * 20
    assert later == b"render 2"
    assert len(renders) == 2


def test_a_scraper_that_gives_up_does_not_cancel_the_others_rendering() -> None:
    release = threading.Event()

    def render() -> bytes:
        release.wait(10)
        return b"text"

    async def one_gives_up() -> bytes:
        shared = SharedScrape(Lane("metrics-test", 1, 8), render, timeout=10)
        impatient = asyncio.ensure_future(shared.text())
        patient = asyncio.ensure_future(shared.text())
        await asyncio.sleep(0)
        impatient.cancel()
        release.set()
        return await patient

    assert asyncio.run(one_gives_up()) == b"text"
