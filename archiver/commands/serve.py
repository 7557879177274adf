"""`chat-archiver serve`."""

from __future__ import annotations

import uvicorn

from archiver.logs import configure_logging
from archiver.service import build_service
from archiver.settings import Settings
from storage.ledger import Ledger
from storage.objectstore import open_store


def serve(settings: Settings) -> int:
    settings.require_upstream()
    configure_logging(settings.log_level, settings.secrets)
    ledger = Ledger.open(settings.ledger_url)
    store = open_store(settings.storage_url, settings.s3)
    store.check_access()
    app = build_service(settings, ledger, store)
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=30,
        )
    finally:
        ledger.close()
    return 0
