"""`chat-archiver export` and `backfill`: request windows through the scheduler's own path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from archiver.errors import CommandError
from archiver.logs import configure_logging
from archiver.progress import ProgressBar
from archiver.service import export_client, requester_for
from archiver.settings import Settings
from archiver.status_report import window_json
from scheduler.client import ExportClient
from scheduler.planner import align_down, windows_between
from scheduler.requester import Requester, TickReport
from storage.errors import ErrorKind
from storage.instants import iso_z
from storage.layout import Window
from storage.ledger import Ledger, WindowRecord
from storage.lifecycle import FINAL, PROBLEMS, RETIRED, WindowState
from storage.redaction import redact
from storage.schema import STREAM
from storage.windows import clip

POLL_SECONDS = 1.0


def _windows(settings: Settings, start: datetime, end: datetime) -> list[Window]:
    if end <= start:
        raise CommandError(f"the end {end.isoformat()} is not after the start {start.isoformat()}")
    windows = windows_between(start, end, settings.window)
    now = datetime.now(UTC)
    if windows and windows[-1].end > now:
        latest = align_down(now, settings.window)
        raise CommandError(
            f"the window {windows[-1]} ends in the future; it would be committed half-full "
            f"and never revisited. Choose an end at or before {_iso(latest)}"
        )
    return windows


def default_until(settings: Settings, now: datetime) -> datetime:
    """The end of the last window the scheduler itself would already request."""
    return align_down(now - settings.settle_delay, settings.window)


async def _request_all(
    requester: Requester, ledger: Ledger, windows: list[Window], sent: list[str]
) -> str | None:
    """Runs request ticks until none of `windows` is still waiting to be sent; the export ids
    sent go to `sent`."""
    wanted = set(windows)
    while True:
        report = await requester.request_due()
        sent += report.requested
        if report.stopped:
            return report.stopped
        waiting = [
            record
            for record in ledger.windows(STREAM, states=[WindowState.PLANNED])
            if record.window in wanted
        ]
        if not waiting:
            return None
        if not report.requested:
            await asyncio.sleep(POLL_SECONDS)


def refuse_overlaps(ledger: Ledger, windows: list[Window], command: str) -> None:
    """One line naming the first window of another length these would overlap, and the way out."""
    clashes = ledger.conflicts(STREAM, windows)
    if not clashes:
        return
    clash = clashes[0]
    first = min(windows[0].start, clash.window.start).isoformat()
    last = max(windows[-1].end, clash.window.end).isoformat()
    more = f" (and {len(clashes) - 1} more)" if len(clashes) > 1 else ""
    raise CommandError(
        f"{command} refused: the window {clash.window} ({clash.state}) overlaps the requested "
        f"windows{more}, and windows never overlap. To replace it with windows of "
        f"ARCHIVER_WINDOW, run: chat-archiver export --replace --start {first} --end {last}"
    )


def replacement_windows(ledger: Ledger, windows: list[Window], length: timedelta) -> list[Window]:
    """The requested windows widened to cover every window of another length they overlap, so
    nothing those covered is left without a window; edges not on a multiple of `length` are
    cut to the replaced windows' bounds."""
    clashes = ledger.conflicts(STREAM, windows)
    if not clashes:
        return windows
    low = min(windows[0].start, *(clash.window.start for clash in clashes))
    high = max(windows[-1].end, *(clash.window.end for clash in clashes))
    return clip(windows_between(low, high, length), low, high)


def export(settings: Settings, start: datetime, end: datetime, replace: bool = False) -> int:
    configure_logging("WARNING", settings.secrets)
    windows = _windows(settings, start, end)
    ledger = Ledger.open(settings.ledger_url)
    client = export_client(settings)
    sent: list[str] = []
    try:
        now = datetime.now(UTC)
        if replace:
            windows = replacement_windows(ledger, windows, settings.window)
            retired = ledger.replace(
                STREAM,
                windows,
                reason=f"replaced by export --replace of {len(windows)} window(s)",
                now=now,
            )
            if retired:
                print(f"replacing {retired} window(s) of another length")
        else:
            refuse_overlaps(ledger, windows, "export")
        # A committed window is re-exported by force; one waiting for its callback gets a new
        # attempt (the earlier ones stay eligible); one being processed is left to finish.
        ledger.force_due(STREAM, windows, include_committed=True, rerequest=True, now=now)
        stopped = asyncio.run(_send(settings, ledger, windows, client, sent))
        for window in windows:
            print(f"{window}  {_what_was_sent(ledger.window(STREAM, window), set(sent))}")
        if stopped:
            raise CommandError(stopped)
    finally:
        ledger.close()
    print(
        f"sent {len(sent)} export request(s) for {len(windows)} window(s); "
        f"callbacks go to {settings.public_url}"
    )
    return 0


def _what_was_sent(record: WindowRecord | None, sent: set[str]) -> str:
    if record is None:
        return "missing"
    if record.export_id in sent and record.state == WindowState.REQUESTED:
        deadline = record.deadline_at.isoformat(timespec="seconds") if record.deadline_at else "-"
        forced = "; supersedes its earlier exports" if record.committed_at else ""
        return (
            f"requested: attempt {record.attempts}, export {record.export_id}, "
            f"callback deadline {deadline}{forced}"
        )
    if record.state == WindowState.RECEIVED:
        return "received: a callback is being processed; nothing sent"
    if record.state == WindowState.SPLIT:
        return "split: the upstream refused the period; its halves are windows of their own"
    return f"{record.state}: nothing sent ({record.reason or 'no reason recorded'})"


async def _send(
    settings: Settings,
    ledger: Ledger,
    windows: list[Window],
    client: ExportClient,
    sent: list[str],
) -> str | None:
    try:
        return await _request_all(requester_for(settings, ledger, client), ledger, windows, sent)
    finally:
        await client.aclose()


def backfill(
    settings: Settings,
    since: datetime,
    until: datetime | None,
    force: bool,
    timeout: float | None,
    *,
    as_json: bool = False,
) -> int:
    configure_logging("WARNING", settings.secrets)
    windows = _windows(settings, since, until or default_until(settings, datetime.now(UTC)))
    ledger = Ledger.open(settings.ledger_url)
    client = export_client(settings)
    try:
        refuse_overlaps(ledger, windows, "backfill")
        ledger.force_due(STREAM, windows, include_committed=force, now=datetime.now(UTC))
        outcome = asyncio.run(_backfill(settings, ledger, windows, client, timeout))
        records = _covering(ledger, windows)
    finally:
        ledger.close()
    failed = [record for record in records if record.state in PROBLEMS]
    committed = sum(1 for record in records if record.state == WindowState.COMMITTED)
    if as_json:
        document = {
            "windows": len(records),
            "by_state": dict(Counter(str(record.state) for record in records)),
            "timed_out": outcome == "timed_out",
            "waiting": [
                window_json(record) | {"waiting_for": waiting_for(record)}
                for record in records
                if record.state not in FINAL
            ],
            "problems": [window_json(record) for record in failed],
        }
        print(json.dumps(document, indent=2))
    else:
        for record in failed:
            print(redact(f"{record.state}: {record.window}  {record.reason}"), file=sys.stderr)
        if outcome == "timed_out":
            print(f"gave up waiting after {timeout:.0f}s for:", file=sys.stderr)
            for record in records:
                if record.state not in FINAL:
                    print(f"  {record.window}  {waiting_for(record)}", file=sys.stderr)
        print(f"backfill: {committed} committed, {len(failed)} failed, of {len(records)}")
    return 1 if failed or outcome == "timed_out" else 0


def _progress_detail(states: Counter[str], total: int) -> str:
    return (
        f"committed, {total - states[WindowState.PLANNED]}/{total} requested, "
        f"{states[WindowState.REQUESTED] + states[WindowState.RECEIVED]} in flight, "
        f"{sum(states[state] for state in PROBLEMS)} failed"
    )


async def _backfill(
    settings: Settings,
    ledger: Ledger,
    windows: list[Window],
    client: ExportClient,
    timeout: float | None,
) -> str:
    """Request ticks run beside a poll of the ledger, so progress shows during a long tick."""
    requester = requester_for(settings, ledger, client)
    bar = ProgressBar(len(windows))
    deadline = time.monotonic() + timeout if timeout else None
    tick: asyncio.Task[TickReport] | None = None
    try:
        while True:
            if tick is None or tick.done():
                if tick is not None:
                    report = tick.result()
                    if report.stop_kind is ErrorKind.USER:
                        raise CommandError(report.stopped or "requesting stopped")
                tick = asyncio.create_task(requester.request_due())
            records = await asyncio.to_thread(_covering, ledger, windows)
            states: Counter[str] = Counter(record.state for record in records)
            bar.total = len(records)
            bar.update(states[WindowState.COMMITTED], _progress_detail(states, len(records)))
            if all(record.state in FINAL for record in records):
                return "finished"
            if deadline and time.monotonic() > deadline:
                return "timed_out"
            await asyncio.sleep(POLL_SECONDS)
    finally:
        if tick is not None and not tick.done():
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick
        bar.close()
        await client.aclose()


def waiting_for(record: WindowRecord) -> str:
    """What a window that is not final waits for, and what an operator can do about it."""
    export = (
        f"`chat-archiver export --start {_iso(record.window.start)} "
        f"--end {_iso(record.window.end)}`"
    )
    if record.state == WindowState.REQUESTED:
        deadline = _iso(record.deadline_at) if record.deadline_at else "-"
        return (
            f"no callback yet for attempt {record.attempts} (export {record.export_id}), "
            f"deadline {deadline}; {export} re-requests it now"
        )
    if record.state == WindowState.RECEIVED:
        return "a callback is stored and being processed"
    if record.state == WindowState.PLANNED:
        due = _iso(record.next_request_at) if record.next_request_at else "now"
        reason = f" after: {record.reason}" if record.reason else ""
        return f"not requested yet, due {due}{reason}"
    return str(record.state)


def _iso(moment: datetime | None) -> str:
    return iso_z(moment) if moment else "-"


def _covering(ledger: Ledger, windows: list[Window]) -> list[WindowRecord]:
    """The live windows that cover `windows`: the windows themselves, or the halves that replaced
    a window the upstream refused as too long (a `split` window is history, not waited for)."""
    start, end = windows[0].start, windows[-1].end
    return [
        record
        for record in ledger.windows(STREAM, since=start, until=end)
        if record.state not in RETIRED and record.window.end <= end
    ]
