"""The soak's checks, as a reader of the bucket sees it: every expected window committed, its
rows exactly the platform's, no row twice in what a reader globbing the prefix gets, no part
that no manifest lists."""

from __future__ import annotations

import io
import json
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simulator.corpus import MessageCorpus
from storage.layout import Window, manifest_key
from storage.ledger import Ledger
from storage.objectstore import ObjectStore
from storage.schema import STREAM
from storage.verify import verify_archive


@dataclass
class Verdict:
    expected: int
    committed: int
    rows_expected: int
    rows_found: int
    rows_exact: bool
    duplicates: int
    stale_parts: int
    other_problems: list[str]
    states: dict[str, int]

    @property
    def lost(self) -> bool:
        return (
            self.committed < self.expected
            or not self.rows_exact
            or self.duplicates > 0
            or self.stale_parts > 0
            or bool(self.other_problems)
        )


def wait_committed(ledger_url: str, windows: list[Window], stall: float) -> None:
    """Until every window is committed, or none more was for `stall` seconds."""
    wanted = set(windows)
    best, progress_at = -1, time.monotonic()
    while time.monotonic() - progress_at < stall:
        try:
            with Ledger.open(ledger_url) as ledger:
                done = {r.window for r in ledger.windows(STREAM) if r.state == "committed"}
        except Exception as error:  # noqa: BLE001 - the ledger may be between faults; ask again
            print(f"  (ledger read failed: {error})", file=sys.stderr)
            done = set()
        if wanted <= done:
            return
        if len(wanted & done) > best:
            best, progress_at = len(wanted & done), time.monotonic()
        time.sleep(1)


def verify(
    store: ObjectStore, ledger_url: str, windows: list[Window], corpus: MessageCorpus
) -> Verdict:
    """What a reader of the bucket sees, against what the platform holds for `windows`."""
    with Ledger.open(ledger_url) as ledger:
        records = {r.window: r for r in ledger.windows(STREAM)}
    states: dict[str, int] = {}
    for record in records.values():
        states[record.state] = states.get(record.state, 0) + 1
    committed = [w for w in windows if w in records and records[w].state == "committed"]
    expected_rows = {m["id"]: m for w in windows for m in corpus.between(w.start, w.end)}
    found: dict[str, dict[str, Any]] = {}
    for window in committed:
        manifest = json.loads(store.get_bytes(manifest_key(window)))
        for part in manifest["parts"]:
            for row in pq.read_table(io.BytesIO(store.get_bytes(part["key"]))).to_pylist():
                found[row["id"]] = _as_api(row)
    everything = [
        pq.read_table(io.BytesIO(store.get_bytes(info.key)), columns=["id"])
        for info in store.list(f"{STREAM}/")
        if info.key.endswith(".parquet")
    ]
    ids = pa.concat_tables(everything).column("id") if everything else pa.array([])
    duplicates = len(ids) - len(pc.unique(ids)) if len(ids) else 0
    problems = list(verify_archive(store))
    stale = [p for p in problems if p.kind == "unlisted"]
    other = [f"{p.kind} {p.key}" for p in problems if p.kind != "unlisted"]
    exact = found == expected_rows
    return Verdict(
        expected=len(windows),
        committed=len(committed),
        rows_expected=len(expected_rows),
        rows_found=len(found),
        rows_exact=exact,
        duplicates=duplicates,
        stale_parts=len(stale),
        other_problems=other,
        states=states,
    )


def _iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _as_api(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "chatId": row["chat_id"],
        "chatThreadId": row["chat_thread_id"],
        "content": row["content"],
        "rawContent": row["raw_content"],
        "externalId": row["external_id"],
        "role": row["role"],
        "senderId": row["sender_id"],
        "createdAt": _iso(row["created_at"]),
        "updatedAt": _iso(row["updated_at"]),
    }
