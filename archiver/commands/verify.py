"""`chat-archiver verify`: the archive checked as the table a warehouse reads.

Manifests against objects (plain layout) or the current snapshot against the ledger and the
store (Iceberg); then, for both, no id twice, no gap or overlap between committed windows;
with `--source`, archived chats read back from the platform and compared.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from datetime import datetime
from itertools import chain
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from archiver.errors import CommandError
from archiver.settings import Settings
from archiver.source_check import Difference, compare_chat, fetch_chat
from storage.ledger import Ledger, WindowRecord
from storage.manifest import ManifestError, load, manifest_keys
from storage.objectstore import ObjectNotFound, ObjectStore, open_store
from storage.schema import STREAM
from storage.verify import Problem, verify_archive
from storage.verify_table import ever_committed, ledger_problems, plain_problems

SOURCE_TIMEOUT = 30.0


def verify(settings: Settings, *, since: datetime | None, source: bool, sample: int) -> int:
    store = open_store(settings.storage_url, settings.s3)
    with Ledger.open(settings.ledger_url) as ledger:
        records = ledger.windows(STREAM)
    if settings.table_format == "iceberg":
        from archiver.tables import table_source

        where = f"the Iceberg table {settings.iceberg_table}"
        archive: _Archive = _IcebergArchive(table_source(settings).current())
        checks: Iterator[Problem] = archive.problems(records, since)
    else:
        where = store.description
        archive = _PlainArchive(store, since)
        checks = chain(verify_archive(store, since=since), plain_problems(store, records, since))
    checks = chain(checks, ledger_problems(records, settings.start, since))
    problems = 0
    for problem in checks:
        problems += 1
        print(f"{problem.kind:<9} {problem.key}  {problem.detail}")
    if source:
        problems += _check_source(settings, archive, records, sample)
    if problems:
        print(f"verify: {problems} problem(s) in {where}")
        return 1
    print(f"verify: {where} matches its ledger" + (" and the platform" if source else ""))
    return 0


class _Archive:
    def chat_ids(self) -> list[str]:
        raise NotImplementedError

    def rows_of(self, chat_ids: list[str]) -> list[dict[str, Any]]:
        raise NotImplementedError

    def problems(self, records: list[WindowRecord], since: datetime | None) -> Iterator[Problem]:
        raise NotImplementedError


class _PlainArchive(_Archive):
    def __init__(self, store: ObjectStore, since: datetime | None) -> None:
        self.store = store
        self.since = since

    def _parts(self) -> Iterator[pq.ParquetFile]:
        for key, _window in manifest_keys(self.store, STREAM, self.since):
            try:
                manifest = load(key, self.store.get_bytes(key))
            except (ManifestError, ObjectNotFound):
                continue
            for part in manifest.parts:
                try:
                    yield pq.ParquetFile(io.BytesIO(self.store.get_bytes(part.key)))
                except ObjectNotFound:
                    continue

    def chat_ids(self) -> list[str]:
        found: set[str] = set()
        for part in self._parts():
            found |= set(pc.unique(part.read(columns=["chat_id"]).column("chat_id")).to_pylist())
        return sorted(found)

    def rows_of(self, chat_ids: list[str]) -> list[dict[str, Any]]:
        wanted = pa.array(chat_ids, pa.string())
        rows: list[dict[str, Any]] = []
        for part in self._parts():
            table = part.read()
            rows += table.filter(pc.is_in(table.column("chat_id"), wanted)).to_pylist()
        return rows


class _IcebergArchive(_Archive):
    def __init__(self, table: Any) -> None:
        self.table = table

    def problems(self, records: list[WindowRecord], since: datetime | None) -> Iterator[Problem]:
        if self.table is None:
            for record in ever_committed(records):
                if record.rows:
                    yield Problem(record.window.name, "snapshot", "the table does not exist")
            return
        from storage.iceberg.verify import snapshot_problems

        yield from snapshot_problems(self.table, records, since)

    def chat_ids(self) -> list[str]:
        if self.table is None or self.table.current_snapshot() is None:
            return []
        ids = self.table.scan(selected_fields=("chat_id",)).to_arrow().column("chat_id")
        return sorted(pc.unique(ids).to_pylist())

    def rows_of(self, chat_ids: list[str]) -> list[dict[str, Any]]:
        quoted = ", ".join("'" + chat.replace("'", "''") + "'" for chat in chat_ids)
        rows = self.table.scan(row_filter=f"chat_id IN ({quoted})").to_arrow()
        return list(rows.to_pylist())


def _check_source(
    settings: Settings, archive: _Archive, records: list[WindowRecord], sample: int
) -> int:
    if not settings.api_url or not settings.api_key:
        raise CommandError("verify --source needs ARCHIVER_API_URL and ARCHIVER_API_KEY")
    if sample < 1:
        raise CommandError(f"--sample must be at least 1, got {sample}")
    chats = archive.chat_ids()
    chosen = sorted(random.sample(chats, min(sample, len(chats))))
    committed = [record.window for record in ever_committed(records)]
    by_chat: dict[str, list[dict[str, Any]]] = {chat: [] for chat in chosen}
    for row in archive.rows_of(chosen) if chosen else []:
        by_chat[row["chat_id"]].append(row)
    differences: list[Difference] = []
    headers = {"authorization": settings.api_key}
    with httpx.Client(base_url=settings.api_url, headers=headers, timeout=SOURCE_TIMEOUT) as client:
        for chat in chosen:
            differences += compare_chat(chat, by_chat[chat], fetch_chat(client, chat), committed)
    for difference in differences:
        print(
            f"{difference.kind:<9} {difference.id}  chat {difference.chat_id}: {difference.detail}"
        )
    print(f"verify --source: {len(chosen)} chat(s) read back, {len(differences)} difference(s)")
    return len(differences)
