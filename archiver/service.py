"""The composition root of `serve`: receiver, worker and scheduler in one process."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from apscheduler.triggers.interval import IntervalTrigger
from starlette.applications import Starlette

from archiver.metrics import register_ledger_collector
from archiver.settings import Settings
from archiver.settings_metrics import export_settings
from archiver.tables import commit_target
from archiver.version import version
from receiver.app import Readiness, create_app
from receiver.decoding.download import DownloadPolicy
from receiver.intake import Intake, IntakeLanes, IntakeLimits
from receiver.lanes import Lane, LaneUnavailable
from receiver.processing import ProcessingConfig
from receiver.status_page import PageOptions, StatusPage, status_routes
from receiver.worker import ProcessingWorker
from scheduler.client import ExportClient
from scheduler.requester import Requester, RequestPolicy
from scheduler.schedule import build_scheduler, record_tick
from storage.commit import WriteOptions
from storage.ledger import Ledger
from storage.objectstore import ObjectStore
from storage.raw_retention import prune_raw
from storage.redaction import add_secret, redact
from storage.schema import STREAM

log = logging.getLogger("chat_archiver.service")


SHUTDOWN_TIMEOUT = 25.0
RAW_PRUNE_INTERVAL = 3600.0
# Each readiness probe gets this long; they run at once, so /readyz answers within 2 s
# with room for a loaded machine.
READY_PROBE_TIMEOUT = 1.0
KEY_REJECTED_WARNING = "the upstream rejected the API key; set a valid ARCHIVER_API_KEY"


def replica_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def request_policy(settings: Settings) -> RequestPolicy:
    return RequestPolicy(
        window=settings.window,
        settle_delay=settings.settle_delay,
        callback_timeout=settings.callback_timeout,
        max_attempts=settings.max_attempts,
        per_tick=settings.requests_per_tick,
        pacing=settings.request_pacing,
        start=settings.start,
    )


def processing_config(settings: Settings, store: ObjectStore | None = None) -> ProcessingConfig:
    """With `store`, windows go to the configured table format on it (else the plain layout
    on whatever store the worker has)."""
    return ProcessingConfig(
        download=DownloadPolicy(
            allow_insecure=settings.allow_insecure_callbacks,
            allow_private=settings.download_allow_private,
            max_bytes=settings.max_download_bytes,
        ),
        write=WriteOptions(
            part_bytes=settings.part_bytes, row_group_bytes=settings.row_group_bytes
        ),
        max_attempts=settings.max_attempts,
        target=commit_target(settings, store) if store is not None else None,
        shrink_guard=settings.shrink_guard,
    )


def export_client(settings: Settings) -> ExportClient:
    settings.require_upstream()
    assert settings.api_url and settings.api_key
    return ExportClient(settings.api_url, settings.api_key, language=settings.language)


def requester_for(settings: Settings, ledger: Ledger, client: ExportClient) -> Requester:
    assert settings.public_url and settings.api_key
    return Requester(
        ledger,
        client,
        public_url=settings.public_url,
        api_key=settings.api_key,
        policy=request_policy(settings),
    )


def build_service(settings: Settings, ledger: Ledger, store: ObjectStore) -> Starlette:
    """The ASGI app; its lifespan starts and stops the worker and the scheduler."""
    add_secret(settings.api_key)
    client = export_client(settings)
    requester = requester_for(settings, ledger, client)
    worker = ProcessingWorker(
        ledger,
        store,
        processing_config(settings, store),
        owner=replica_name(),
        lease=settings.lease,
        poll_interval=settings.worker_poll.total_seconds(),
    )
    limits = IntakeLimits(
        max_bytes=settings.max_callback_bytes,
        body_timeout=settings.body_timeout.total_seconds(),
        idle_timeout=min(settings.body_timeout.total_seconds(), 15.0),
    )
    # Intake and the probes wait on the store with short timeouts; the worker keeps the patient
    # store. Each dependency has lanes of its own, apart from the worker's threads.
    fast_store = store.fast_failing()
    lanes = IntakeLanes.default(local_ledger=not ledger.is_postgres)
    probes = {"ledger": Lane("probe-ledger", 2), "object store": Lane("probe-store", 2)}
    intake = Intake(ledger, fast_store, limits, lanes=lanes, on_accepted=lambda: worker.wake())
    register_ledger_collector(ledger, settings.start)
    export_settings(settings)

    def ledger_probe() -> bool:
        ledger.ping()
        return requester.key_rejected()

    async def probe(name: str, function: Callable[[], object]) -> tuple[str | None, object]:
        try:
            return None, await probes[name].run(READY_PROBE_TIMEOUT, function)
        except LaneUnavailable as error:
            return f"{name} did not answer: {error}", None
        except Exception as error:  # noqa: BLE001 - reported as the reason, not raised
            return f"{name} unreachable: {type(error).__name__}: {error}", None

    async def readiness() -> Readiness:
        (ledger_problem, key_rejected), (store_problem, _) = await asyncio.gather(
            probe("ledger", ledger_probe),
            probe("object store", lambda: fast_store.size("_readyz")),
        )
        problems = [redact(problem) for problem in (ledger_problem, store_problem) if problem]
        return Readiness(problems, [KEY_REJECTED_WARNING] if key_rejected else [])

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        worker.start()
        scheduler = build_scheduler(
            requester,
            settings.schedule,
            request_interval=settings.request_interval.total_seconds(),
        )
        if settings.raw_retention is not None:
            scheduler.add_job(
                _prune_raw_tick,
                IntervalTrigger(seconds=RAW_PRUNE_INTERVAL, timezone=UTC),
                args=(store, ledger, settings.raw_retention),
                id="prune-raw",
                coalesce=True,
                max_instances=1,
            )
        scheduler.start()
        _freeze_startup_objects()
        startup = asyncio.create_task(_catch_up(requester))
        app.state.catch_up = startup
        log.info(
            "service_started", extra={"storage": store.description, "schedule": settings.schedule}
        )
        try:
            yield
        finally:
            log.info("service_stopping")
            startup.cancel()
            scheduler.shutdown(wait=False)
            await worker.stop(SHUTDOWN_TIMEOUT)
            await client.aclose()
            for lane in (lanes.ledger, lanes.store, lanes.record, *probes.values()):
                lane.shutdown()
            log.info("service_stopped")

    app = create_app(intake, readiness, version=version(), lifespan=lifespan)
    app.state.worker = worker
    page = StatusPage(
        ledger,
        store,
        PageOptions(stream=STREAM, start=settings.start),
        settings.admin_token,
        on_replay=worker.wake,
    )
    app.router.routes.extend(status_routes(page))
    return app


def _freeze_startup_objects() -> None:
    """Moves what start-up built (modules, botocore's service model, SQLAlchemy's tables: some
    175,000 objects that live as long as the process) out of the collector's reach. Otherwise
    every full collection walks them all, holding the GIL for ~70 ms, and each one stalls every
    request in flight."""
    gc.collect()
    gc.freeze()


async def _prune_raw_tick(store: ObjectStore, ledger: Ledger, retention: timedelta) -> None:
    """Deletes raw objects older than ARCHIVER_RAW_RETENTION that no window needs any more."""
    try:
        report = await asyncio.to_thread(
            prune_raw, store, ledger, older_than=datetime.now(UTC) - retention
        )
    except Exception as error:  # noqa: BLE001 - logged; the next tick tries again
        log.error("raw_prune_failed", extra={"reason": f"{type(error).__name__}: {error}"})
        return
    log.info(
        "raw_pruned",
        extra={
            "deleted_objects": report.deleted.objects,
            "deleted_bytes": report.deleted.bytes,
            "kept_objects": report.kept.objects,
            "kept_bytes": report.kept.bytes,
        },
    )


async def _catch_up(requester: Requester) -> None:
    """One tick at start: windows missed while the service was down are planned at once."""
    try:
        await requester.plan()
        record_tick(await requester.request_due())
    except Exception as error:  # noqa: BLE001 - logged; the schedule tries again
        log.error("startup_tick_failed", extra={"reason": f"{type(error).__name__}: {error}"})
