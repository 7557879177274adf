"""`chat-archiver demo`: the whole loop on loopback, with no configuration at all.

A simulator of the upstream API runs in this process; the real service (receiver, scheduler,
worker) runs beside it and archives the last few days into ./archive.
"""

from __future__ import annotations

import json
import shlex
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from archiver.embedded import free_port, running
from archiver.logs import configure_logging
from archiver.progress import ProgressBar
from archiver.service import build_service
from archiver.settings import Settings
from scheduler.planner import align_down, windows_between
from simulator.app import SimulatorConfig
from simulator.server import running_simulator
from storage.instants import iso_z
from storage.layout import Window
from storage.ledger import Ledger, WindowRecord
from storage.lifecycle import WindowState
from storage.schema import STREAM
from storage.stores import open_store

DEMO_KEY = "demo-key"
TIMEOUT_SECONDS = 50.0


def run_demo(days: int, archive: Path) -> int:
    configure_logging("WARNING", [DEMO_KEY])
    archive = archive.resolve()
    day = timedelta(days=1)
    end = align_down(datetime.now(UTC), day)
    windows = windows_between(end - days * day, end, day)
    simulator = SimulatorConfig(
        api_key=DEMO_KEY, allow_insecure_callbacks=True, messages_per_day=2000, callback_delay=0.1
    )
    with (
        tempfile.TemporaryDirectory(prefix="chat-archiver-demo-") as state,
        running_simulator(simulator) as api_url,
    ):
        port = free_port()
        settings = Settings(
            api_url=api_url,
            api_key=DEMO_KEY,
            public_url=f"http://127.0.0.1:{port}",
            allow_insecure_callbacks=True,
            download_allow_private=True,
            storage_url=f"file://{archive}",
            ledger_url=f"sqlite:///{state}/ledger.db",
            request_pacing=timedelta(0),
            request_interval=timedelta(seconds=0.5),
            worker_poll=timedelta(seconds=0.2),
        )
        ledger = Ledger.open(settings.ledger_url)
        store = open_store(settings.storage_url)
        app = build_service(settings, ledger, store)
        print(f"chat-archiver demo: simulator at {api_url}, service at {settings.public_url}")
        print(f"archiving {len(windows)} day(s) into {archive}")
        with running(app, "127.0.0.1", port):
            ledger.force_due(STREAM, windows, include_committed=True, now=datetime.now(UTC))
            done = _wait(ledger, windows)
        records = [r for r in ledger.windows(STREAM) if r.window in set(windows)]
        ledger.close()
    if not done:
        print(f"demo: not every window committed within {TIMEOUT_SECONDS:.0f}s", file=sys.stderr)
        return 1
    _print_report(archive, records)
    return 0


def _wait(ledger: Ledger, windows: list[Window]) -> bool:
    bar = ProgressBar(len(windows))
    deadline = time.monotonic() + TIMEOUT_SECONDS
    wanted = set(windows)
    try:
        while time.monotonic() < deadline:
            states = [r.state for r in ledger.windows(STREAM) if r.window in wanted]
            committed = states.count(WindowState.COMMITTED)
            bar.update(committed, "windows committed")
            if committed == len(windows):
                return True
            time.sleep(0.2)
        return False
    finally:
        bar.close()


def _iso(moment: datetime) -> str:
    return iso_z(moment)


def _print_report(archive: Path, records: list[WindowRecord]) -> None:
    print()
    print(f"{'window start':<22} {'window end':<22} {'state':<10} {'rows':>7}")
    total = 0
    for record in records:
        total += record.rows or 0
        start, end = (_iso(moment) for moment in (record.window.start, record.window.end))
        print(f"{start:<22} {end:<22} {record.state:<10} {record.rows or 0:>7}")
    print(f"\n{len(records)} window(s) committed, {total} rows. Files written under {archive}:")
    for path in sorted((archive / STREAM).rglob("*.parquet")):
        print(f"  {path.relative_to(archive)}  {path.stat().st_size:,} bytes")
    for path in sorted((archive / "_manifests").rglob("*.json")):
        print(f"  {path.relative_to(archive)}")
    print("\nQuery them (pyarrow comes with chat-archiver):")
    print(f"  {query_hint(archive)}")


def query_hint(archive: Path) -> str:
    """A command that reads the archive back with what any install of chat-archiver has."""
    script = (
        "import pyarrow.dataset as ds; "
        f't = ds.dataset({json.dumps(str(archive / STREAM))}, partitioning="hive").to_table(); '
        'counts = t.group_by("date").aggregate([("id", "count")]).sort_by("date"); '
        '[print(row["date"], row["id_count"], "messages") for row in counts.to_pylist()]'
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
