"""`chat-archiver verify` and `ddl`: the archive as warehouses see it."""

from __future__ import annotations

import json
from datetime import datetime

from archiver.settings import Settings
from storage.ddl import render_ddl
from storage.objectstore import open_store
from storage.verify import verify_archive


def verify(settings: Settings, *, since: datetime | None, as_json: bool = False) -> int:
    store = open_store(settings.storage_url, settings.s3)
    if as_json:
        found = [
            {"kind": p.kind, "key": p.key, "detail": p.detail}
            for p in verify_archive(store, since=since)
        ]
        document = {"ok": not found, "archive": store.description, "problems": found}
        print(json.dumps(document, indent=2))
        return 1 if found else 0
    problems = 0
    for problem in verify_archive(store, since=since):
        problems += 1
        print(f"{problem.kind:<9} {problem.key}  {problem.detail}")
    if problems:
        print(f"verify: {problems} problem(s) in {store.description}")
        return 1
    print(f"verify: archive at {store.description} matches its manifests")
    return 0


def ddl(settings: Settings, *, dialect: str, table: str) -> int:
    print(render_ddl(dialect, settings.storage_url, table=table))
    return 0
