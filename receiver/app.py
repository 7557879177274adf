"""The receiver's HTTP routes (DESIGN §3.3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.intake import Intake
from receiver.openapi import openapi_document

ReadinessCheck = Callable[[], Awaitable[list[str]]]
Lifespan = Callable[[Starlette], AbstractAsyncContextManager[None]]


def create_app(
    intake: Intake,
    readiness: ReadinessCheck,
    *,
    version: str = "0",
    lifespan: Lifespan | None = None,
) -> Starlette:
    document = openapi_document(version)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        problems = await readiness()
        if problems:
            return JSONResponse({"status": "not_ready", "problems": problems}, status_code=503)
        return JSONResponse({"status": "ready"})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

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
