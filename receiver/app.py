"""The receiver's HTTP routes.

`/healthz` answers from the event loop alone. `/readyz` answers within its bound whatever its
dependencies do, and `/metrics` renders off the event loop (once for all the scrapes that
arrive while it runs), so neither a stalled ledger nor a stalled object store can
freeze a probe.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.intake import Intake
from receiver.lanes import Lane, LaneUnavailable
from receiver.openapi import openapi_document
from receiver.scrapes import SharedScrape

METRICS_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True)
class Readiness:
    """`problems` make the replica unready; `warnings` are reported but do not."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


ReadinessCheck = Callable[[], Awaitable[Readiness]]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_app(
    intake: Intake,
    readiness: ReadinessCheck,
    *,
    version: str = "0",
    lifespan: Lifespan | None = None,
    metrics_lane: Lane | None = None,
) -> Starlette:
    document = openapi_document(version)
    scrapes = SharedScrape(
        metrics_lane or Lane("metrics", 2, 64),
        lambda: generate_latest(REGISTRY),
        timeout=METRICS_TIMEOUT_SECONDS,
    )

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        state = await readiness()
        body: dict[str, object] = {"status": "not_ready" if state.problems else "ready"}
        if state.problems:
            body["problems"] = state.problems
        if state.warnings:
            body["warnings"] = state.warnings
        return JSONResponse(body, status_code=503 if state.problems else 200)

    async def metrics(request: Request) -> Response:
        try:
            text = await scrapes.text()
        except LaneUnavailable as error:
            return JSONResponse(
                {"error": "unavailable", "detail": f"metrics not collected: {error}"},
                status_code=503,
            )
        return Response(text, media_type=CONTENT_TYPE_LATEST)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    routes = [
        Route("/callbacks/{export_id}/{token}", intake.handle, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)
