"""`chat-archiver serve`."""

from __future__ import annotations

import logging
import os
import signal
import sys
from types import FrameType

import uvicorn

from archiver.allocator import fix_mmap_threshold
from archiver.logs import configure_logging
from archiver.service import build_service
from archiver.settings import Settings
from storage.ledger import Ledger
from storage.stores import open_store

log = logging.getLogger("chat_archiver.service")

# Draining HTTP (this) plus finishing the window in hand (SHUTDOWN_TIMEOUT) stays under the
# 45 s termination grace of the deploy files.
HTTP_DRAIN_SECONDS = 10
# How long a thread that wants the GIL waits for the one holding it (Python's default: 5 ms).
# While a window is processed, the event loop waits that long each time it needs the GIL back;
# 1 ms keeps callbacks and probes prompt (404 p99 at 50 clients while a 1M-message window is
# processed: 128-144 -> 111 ms), for about 5% of processing speed (that window: 5.8 -> 6.1 s).
GIL_SWITCH_INTERVAL = 0.001


def serve(settings: Settings) -> int:
    settings.require_upstream()
    sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    configure_logging(settings.log_level, settings.secrets)
    ledger = Ledger.open(settings.ledger_url)
    store = open_store(settings.storage_url, settings.s3)
    store.check_access()
    # After the checks, so that a bad setting still prints one line and nothing else.
    log.info("allocator_configured", extra={"mmap_threshold_bytes": fix_mmap_threshold()})
    app = build_service(settings, ledger, store)
    # uvicorn re-raises SIGTERM once its graceful stop is done; for `serve` that is a clean exit.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=HTTP_DRAIN_SECONDS,
        )
    finally:
        signal.signal(signal.SIGTERM, previous)
        ledger.close()
    if app.state.worker.busy:
        # The window in hand stays leased and is taken over once the lease runs out; waiting for
        # a stuck download here would only get the process killed harder.
        log.warning("exiting_with_window_in_hand")
        logging.shutdown()
        os._exit(0)
    return 0


def _stopped(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)
