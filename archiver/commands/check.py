"""`chat-archiver check`: each dependency in turn, and which one fails."""

from __future__ import annotations

import asyncio

from archiver.settings import Settings
from scheduler.client import ExportClient, UpstreamError
from scheduler.requester import KEY_REJECTED, key_fingerprint
from storage.ledger import Ledger, LedgerError
from storage.objectstore import StoreError
from storage.redaction import redact
from storage.stores import open_store


def check(settings: Settings) -> int:
    failures = 0

    def report(name: str, problem: str | None) -> None:
        nonlocal failures
        if problem:
            failures += 1
            print(redact(f"FAIL  {name}: {problem}"))
        else:
            print(f"ok    {name}")

    report("configuration", None)
    ledger: Ledger | None = None
    try:
        ledger = Ledger.open(settings.ledger_url)
        ledger.ping()
        report("ledger", None)
    except LedgerError as error:
        report("ledger", str(error))
    try:
        open_store(settings.storage_url, settings.s3).check_access()
        report("object store (write, read, delete)", None)
    except StoreError as error:
        report("object store (write, read, delete)", str(error))
    if settings.api_url and settings.api_key:
        problem = asyncio.run(_check_key(settings.api_url, settings.api_key))
        report("API key", problem)
        if problem is None and ledger is not None:
            rejected = ledger.get_meta(KEY_REJECTED)
            if rejected == key_fingerprint(settings.api_key):
                ledger.set_meta(KEY_REJECTED, None)
                print("      the key is accepted again; requests resume")
    else:
        report("API key", "ARCHIVER_API_URL and ARCHIVER_API_KEY are not set")
    if ledger is not None:
        ledger.close()
    return 1 if failures else 0


async def _check_key(api_url: str, api_key: str) -> str | None:
    client = ExportClient(api_url, api_key)
    try:
        await client.check_key()
    except UpstreamError as error:
        return str(error)
    finally:
        await client.aclose()
    return None
