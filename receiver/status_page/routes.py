"""`GET /status`, a window's page, their JSON under `/api/`, and the admin actions.

Ledger reads run in worker threads, at most `MAX_READS` at once and each within
`READ_TIMEOUT`: a stalled ledger makes the page answer 503 with the reason, never the event
loop wait. Admin actions (re-request, replay) exist only with ARCHIVER_ADMIN_TOKEN; each POST
carries the token (a form field from the page, or `Authorization: Bearer` for scripts), so a
forged cross-site form cannot act, and cross-site requests are refused outright.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.templating import Jinja2Templates

from receiver.status_page.data import STATE_COLOURS, PageOptions, overview, window_detail
from storage.layout import Window, window_from_name
from storage.ledger import Ledger
from storage.lifecycle import IN_FLIGHT, RETIRED, STATES
from storage.objectstore import ObjectStore

ACTIONS = ("rerequest", "replay")
MAX_FORM_BYTES = 4096
READ_TIMEOUT = 5.0
MAX_READS = 4
DEFAULT_DAYS = 31
MAX_DAYS = 400
T = TypeVar("T")


class Unavailable(Exception):
    """The ledger did not answer within the bound."""


@dataclass
class StatusPage:
    ledger: Ledger
    store: ObjectStore
    options: PageOptions
    admin_token: str | None
    on_replay: Callable[[], None] = lambda: None

    def __post_init__(self) -> None:
        self._reads = asyncio.Semaphore(MAX_READS)
        self._templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
        self._templates.env.globals["colours"] = STATE_COLOURS

    async def _read(self, fn: Callable[[], T]) -> T:
        try:
            async with asyncio.timeout(READ_TIMEOUT):
                async with self._reads:
                    return await asyncio.to_thread(fn)
        except TimeoutError:
            raise Unavailable(f"the ledger did not answer within {READ_TIMEOUT:.0f} s") from None

    # Reading.

    def _days(self, request: Request) -> int:
        try:
            days = int(request.query_params.get("days", DEFAULT_DAYS))
        except ValueError:
            days = DEFAULT_DAYS
        return max(1, min(days, MAX_DAYS))

    async def _overview(self, request: Request) -> dict[str, Any]:
        days = self._days(request)
        now = datetime.now(UTC)
        return await self._read(lambda: overview(self.ledger, self.options, now, days))

    async def status_html(self, request: Request) -> Response:
        try:
            document = await self._overview(request)
        except Unavailable as error:
            return self._unavailable(request, str(error))
        return self._page(request, "status.html", document)

    async def status_json(self, request: Request) -> Response:
        try:
            return JSONResponse(await self._overview(request))
        except Unavailable as error:
            return JSONResponse({"error": "unavailable", "detail": str(error)}, status_code=503)

    async def _detail(self, request: Request) -> dict[str, Any] | None:
        try:
            window = window_from_name(request.path_params["window"])
        except ValueError:
            return None
        stream = self.options.stream
        return await self._read(lambda: window_detail(self.ledger, self.store, stream, window))

    async def window_html(self, request: Request) -> Response:
        try:
            document = await self._detail(request)
        except Unavailable as error:
            return self._unavailable(request, str(error))
        if document is None:
            return self._page(
                request, "missing.html", {"name": request.path_params["window"]}, status=404
            )
        document["done"] = request.query_params.get("done")
        document["refused"] = request.query_params.get("refused")
        return self._page(request, "window.html", document)

    async def window_json(self, request: Request) -> Response:
        try:
            document = await self._detail(request)
        except Unavailable as error:
            return JSONResponse({"error": "unavailable", "detail": str(error)}, status_code=503)
        if document is None:
            return JSONResponse({"error": "not_found", "detail": "no such window"}, 404)
        return JSONResponse(document)

    # Admin actions.

    def _authorised(self, request: Request, form_token: str | None) -> str | None:
        """None when the request may act; else why not."""
        if not self.admin_token:
            return "admin actions are off: ARCHIVER_ADMIN_TOKEN is not set"
        if request.headers.get("sec-fetch-site") == "cross-site":
            return "cross-site request refused"
        origin = request.headers.get("origin")
        if origin and origin not in (f"{request.url.scheme}://{request.url.netloc}", "null"):
            return "cross-origin request refused"
        header = request.headers.get("authorization", "")
        given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else None
        given = given or form_token
        if not given or not hmac.compare_digest(given.encode(), self.admin_token.encode()):
            return "wrong or missing admin token"
        return None

    async def act(self, request: Request) -> Response:
        action = request.path_params["action"]
        if action not in ACTIONS:
            return JSONResponse({"error": "not_found", "detail": "no such action"}, 404)
        from_page = not request.url.path.startswith("/api/")
        form_token = await _form_token(request) if from_page else None
        refused = self._authorised(request, form_token)
        name = request.path_params["window"]
        if refused:
            if from_page:
                return RedirectResponse(f"/status/windows/{name}?refused={quote(refused)}", 303)
            return JSONResponse({"error": "forbidden", "detail": refused}, status_code=403)
        try:
            window = window_from_name(name)
        except ValueError:
            return JSONResponse({"error": "not_found", "detail": "no such window"}, 404)
        try:
            outcome = await self._read(lambda: self._apply(action, window))
        except Unavailable as error:
            return JSONResponse({"error": "unavailable", "detail": str(error)}, status_code=503)
        if outcome is None:
            return JSONResponse({"error": "not_found", "detail": "no such window"}, 404)
        if action == "replay":
            self.on_replay()
        if from_page:
            return RedirectResponse(f"/status/windows/{name}?done={quote(outcome)}", 303)
        return JSONResponse({"status": "ok", "detail": outcome})

    def _apply(self, action: str, window: Window) -> str | None:
        record = self.ledger.window(self.options.stream, window)
        if record is None:
            return None
        if action == "rerequest":
            if record.state in IN_FLIGHT or record.state in RETIRED:
                return f"not re-requested: the window is {record.state}"
            self.ledger.force_due(
                self.options.stream, [window], include_committed=True, now=datetime.now(UTC)
            )
            return "re-requested: the next request tick sends it"
        if record.export_id is None:
            return "nothing to replay: the window was never requested"
        count = self.ledger.requeue(export_id=record.export_id)
        if count == 0:
            return "nothing to replay: no stored callback"
        return f"replay queued for export {record.export_id}"

    # Rendering.

    def _page(
        self, request: Request, template: str, document: dict[str, Any], status: int = 200
    ) -> Response:
        context = {
            "doc": document,
            "admin": bool(self.admin_token),
            "states": [str(state) for state in STATES],
        }
        return self._templates.TemplateResponse(request, template, context, status_code=status)

    def _unavailable(self, request: Request, reason: str) -> Response:
        return self._page(request, "unavailable.html", {"reason": reason}, status=503)


async def _form_token(request: Request) -> str | None:
    """The `token` field of a small urlencoded form (the page's buttons send nothing else)."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    values = parse_qs(body.decode("utf-8", errors="replace"))
    return values.get("token", [None])[0]


async def _home(request: Request) -> Response:
    return RedirectResponse("/status", status_code=307)


def status_routes(page: StatusPage) -> list[BaseRoute]:
    actions = "{action:str}"
    return [
        Route("/", _home, methods=["GET"]),
        Route("/status", page.status_html, methods=["GET"]),
        Route("/status/windows/{window}", page.window_html, methods=["GET"]),
        Route(f"/status/windows/{{window}}/{actions}", page.act, methods=["POST"]),
        Route("/api/status", page.status_json, methods=["GET"]),
        Route("/api/windows/{window}", page.window_json, methods=["GET"]),
        Route(f"/api/windows/{{window}}/{actions}", page.act, methods=["POST"]),
    ]
