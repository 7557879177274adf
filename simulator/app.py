"""A faithful fake of the chat platform's API, with fault injection.

Routes (the upstream API's validate as its documentation states; errors use its body shape
`{"code", "message", "name", "cta": {"type", "url"}, "feedback": {"enUs", "esEs", "ptBr"}}`):

- `POST /api/v1/chat-messages/export`: header `authorization: <key>`; body `rangeStart`
  (required date-time), `rangeEnd` (nullable, default now), `callbackUrl` (https, or http when
  `allow_insecure_callbacks`), `language` (enUs, esEs, ptBr). 200 `{"message": "Export
  started. ..."}`; 400 on a bad body or a period over 183 days; 401 on a bad key. After
  `callback_delay` it POSTs `{"status": "completed", "url": ".../files/<name>"}` (or the data
  itself, per `callback_shape`) to callbackUrl, retrying on 5xx, 429 and connection errors.
- `GET /api/v1/chat-messages?chatId=` (+ `chatThreadId`, `joins`, `pagination[limit]` 1..1000,
  `ticketIds`): the chat's messages in the ranges exported so far plus those created through
  the API, oldest first. 404 "Chat not found." for a chat the simulator does not have.
- `POST /api/v1/chat-messages`: creates a message (later exports of its time include it).
- `GET /files/{name}`: a prepared export file; 404 unknown, 410 once its link expired.
- `GET /_sim/state`: counts and logs of export requests and callbacks, current faults.
- `POST /_sim/faults`: a JSON object merged into the current faults; answers them.
- `POST /_sim/reset`: clears counts and logs and restores the configured faults.

Fault switches (SimulatorConfig fields, or keys of POST /_sim/faults):
`duplicate_callbacks` (n extra copies of each callback), `callback_delay` (seconds),
`drop_callbacks` (true: never send; n: drop the next n), `fail_export_requests`
(`{"status": 429|500|502|503|504, "count": n, "retry_after": s}`), `failure_notices`
(n, or `{"count", "error"}`: the next n callbacks are `{"status": "failed", "error"}`),
`callback_shape` (link-ndjson-gz, link-json, link-csv, link-zip-ndjson, inline-json,
inline-ndjson), `expire_links` (every link answers 410), `link_ttl` (seconds a link lives),
`echo_requests` (error answers and failure notices repeat the key and the callback URL).
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import islice
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from simulator.callbacks import ExportJob, ExportRunner
from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus, format_ms, to_epoch_us
from simulator.errors import ApiError, bad_request, chat_not_found, injected
from simulator.faults import FaultError
from simulator.files import FileStore, LinkGone
from simulator.state import SimulatorState, iso, range_key
from simulator.validation import (
    ListQuery,
    parse_datetime,
    parse_export_request,
    parse_list_query,
    parse_new_message,
    require_key,
)

__all__ = ["SimulatorConfig", "create_app"]

EXPORT_STARTED = "Export started. A POST will be made to callbackUrl when ready."
_SENDER_TYPES = {"user": "user", "external": "external-user", "agent": "agent"}
_INVALID = object()


@dataclass
class Simulator:
    """Everything the routes share; kept on `app.state.simulator`."""

    config: SimulatorConfig
    corpus: MessageCorpus
    state: SimulatorState
    files: FileStore
    runner: ExportRunner


def create_app(config: SimulatorConfig | None = None) -> Starlette:
    config = config or SimulatorConfig()
    corpus = MessageCorpus(config.seed, config.messages_per_day, config.chats)
    state = SimulatorState(config)
    files = FileStore(config.link_ttl, config.file_dir)
    simulator = Simulator(config, corpus, state, files, ExportRunner(config, corpus, state, files))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await simulator.runner.start()
        try:
            yield
        finally:
            await simulator.runner.aclose()
            files.close()

    app = Starlette(
        routes=[
            Route("/api/v1/chat-messages/export", request_export, methods=["POST"]),
            Route("/api/v1/chat-messages", list_messages, methods=["GET"]),
            Route("/api/v1/chat-messages", create_message, methods=["POST"]),
            Route("/files/{name}", download, methods=["GET"]),
            Route("/_sim/state", read_state, methods=["GET"]),
            Route("/_sim/faults", set_faults, methods=["POST"]),
            Route("/_sim/reset", reset, methods=["POST"]),
        ],
        lifespan=lifespan,
    )
    app.state.simulator = simulator
    return app


def _simulator(request: Request) -> Simulator:
    simulator: Simulator = request.app.state.simulator
    return simulator


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        return _INVALID


def _now() -> datetime:
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def request_export(request: Request) -> Response:
    sim = _simulator(request)
    now = _now()
    body = await _json(request)
    fields = body if isinstance(body, dict) else {}
    entry = {
        "rangeStart": fields.get("rangeStart"),
        "rangeEnd": fields.get("rangeEnd"),
        "callbackUrl": fields.get("callbackUrl"),
        "language": fields.get("language", "enUs"),
        "receivedAt": iso(now),
    }
    try:
        require_key(request.headers.get("authorization"), sim.config.api_key)
        failure = sim.state.take_export_failure()
        if failure is not None:
            raise injected(failure.status, failure.retry_after)
        if body is _INVALID:
            raise bad_request("The request body must be valid JSON.")
        export = parse_export_request(
            body, now=now, allow_insecure=sim.config.allow_insecure_callbacks
        )
    except ApiError as error:
        sim.state.record_export_request(entry | {"status": error.status}, _loose_key(fields, now))
        return _echoed(sim, request, error, fields.get("callbackUrl")).response()
    key = range_key(export.start, export.end)
    sim.state.record_export_request(entry | {"status": 200}, key)
    sim.state.add_exported(export.start, export.end)
    link_base = (sim.config.public_url or str(request.base_url)).rstrip("/")
    sim.runner.submit(
        ExportJob(
            export.start,
            export.end,
            export.callback_url,
            export.language,
            link_base,
            revision=sim.state.take_revision(key),
        )
    )
    return JSONResponse({"message": EXPORT_STARTED})


def _echoed(sim: Simulator, request: Request, error: ApiError, callback_url: object) -> ApiError:
    """With `echo_requests`, the error repeats the request's key and callback URL."""
    if sim.state.echoes_requests():
        error.message += (
            f" Request: authorization={request.headers.get('authorization')!r}, "
            f"callbackUrl={callback_url!r}."
        )
    return error


def _loose_key(fields: dict[str, Any], now: datetime) -> str:
    """The by-range key of a refused request: canonical where the bounds parse, raw otherwise."""
    bounds = []
    for name in ("rangeStart", "rangeEnd"):
        value = fields.get(name)
        if value is None and name == "rangeEnd":
            bounds.append(iso(now))
            continue
        try:
            bounds.append(iso(parse_datetime(value, name)))
        except ApiError:
            bounds.append("null" if value is None else str(value))
    return "/".join(bounds)


async def list_messages(request: Request) -> Response:
    sim = _simulator(request)
    try:
        require_key(request.headers.get("authorization"), sim.config.api_key)
        query = parse_list_query(request.query_params.multi_items())
        in_corpus = query.chat_id in sim.corpus.chat_ids
        if not in_corpus and not sim.state.has_posted_chat(query.chat_id):
            raise chat_not_found()
    except ApiError as error:
        return _echoed(sim, request, error, None).response()
    messages = await anyio.to_thread.run_sync(_chat_messages, sim, query, in_corpus)
    return JSONResponse(messages)


def _chat_messages(sim: Simulator, query: ListQuery, in_corpus: bool) -> list[dict[str, Any]]:
    """The chat's first `limit` known messages, oldest first, with the requested joins."""

    def wanted(message: dict[str, Any]) -> bool:
        return message["chatId"] == query.chat_id and (
            query.chat_thread_id is None or message["chatThreadId"] == query.chat_thread_id
        )

    def exported() -> Iterator[dict[str, Any]]:
        for start, end in sim.state.exported_ranges():
            yield from filter(wanted, sim.corpus.between(start, end))

    posted = [m for m in sim.state.posted(query.chat_id) if wanted(m)]
    known = heapq.merge(exported() if in_corpus else iter(()), posted, key=_created_at)
    edited, deleted = sim.state.upstream_changes()
    present = (m for m in known if m["id"] not in deleted)
    messages = [
        dict(message) | edited.get(message["id"], {}) for message in islice(present, query.limit)
    ]
    for message in messages:
        if "senders" in query.joins:
            sender_id, role = message["senderId"], message["role"]
            message["sender"] = (
                None
                if sender_id is None
                else {"id": sender_id, "type": _SENDER_TYPES.get(role, role)}
            )
        if "chat-message-follow-ups" in query.joins:
            message["chatMessageFollowUps"] = []
    return messages


def _created_at(message: dict[str, Any]) -> str:
    return str(message["createdAt"])


async def create_message(request: Request) -> Response:
    sim = _simulator(request)
    try:
        require_key(request.headers.get("authorization"), sim.config.api_key)
        body = await _json(request)
        if body is _INVALID:
            raise bad_request("The request body must be valid JSON.")
        fields = parse_new_message(body)
    except ApiError as error:
        return error.response()
    created = format_ms(to_epoch_us(_now()) // 1000)
    message = {
        "id": str(uuid.uuid4()),
        "chatId": fields["chatId"],
        "chatThreadId": fields["chatThreadId"],
        "content": fields["content"],
        "rawContent": None,
        "externalId": fields["externalId"],
        "role": fields["role"],
        "senderId": fields["senderId"],
        "createdAt": created,
        "updatedAt": created,
    }
    sim.state.add_posted(message)
    return JSONResponse(message)


async def download(request: Request) -> Response:
    sim = _simulator(request)
    name = request.path_params["name"]
    try:
        stored = sim.files.get(
            name, force_expired=sim.state.links_expired(), ttl=sim.state.link_ttl()
        )
    except LinkGone:
        return JSONResponse({"error": "This download link has expired."}, status_code=410)
    if stored is None:
        return JSONResponse({"error": "No such file."}, status_code=404)
    return FileResponse(stored.path, media_type=stored.content_type)


async def read_state(request: Request) -> Response:
    sim = _simulator(request)
    snapshot = sim.state.snapshot()
    snapshot["chat_ids"] = list(sim.corpus.chat_ids)
    snapshot["seed"] = sim.config.seed
    snapshot["messages_per_day"] = sim.config.messages_per_day
    return JSONResponse(snapshot)


async def set_faults(request: Request) -> Response:
    sim = _simulator(request)
    try:
        faults = sim.state.update_faults(await _json(request))
    except FaultError as error:
        return JSONResponse({"error": str(error)}, status_code=400)
    return JSONResponse(faults)


async def reset(request: Request) -> Response:
    _simulator(request).state.reset()
    return JSONResponse({"status": "reset"})
