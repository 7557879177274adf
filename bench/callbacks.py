"""Callback and probe latency: how fast `serve` answers while idle and while it processes a big
window, at 1, 10 and 50 concurrent clients.

Everything runs as separate processes on loopback, as in production: moto's S3 server,
`chat-archiver serve` (SQLite ledger, S3 store, or a local directory with `--store file`), and
the load generator (asyncio, a new connection per request, as the platform would open them).
For each client count, state (idle, busy) and kind of request, the clients send requests back
to back for `--seconds`:

| kind | request |
| --- | --- |
| accepted | `POST /callbacks/{id}/{token}` of a requested export: stored raw, recorded, 200 |
| not_found | `POST /callbacks/{unknown id}/{token}`: the ledger look-up, 404 |
| healthz | `GET /healthz` |
| metrics | `GET /metrics` |

"busy" means a window of `--messages` messages (a gzip NDJSON link callback) is being
processed meanwhile; a run that outlasts the window is marked and a new window is started for
the next run. The baseline, measured in the same run under the same load, is a bare Starlette
app under uvicorn answering the same routes with a constant: the machine's own floor for one
HTTP exchange. For accepted callbacks it does the durable work an answer waits for, and no
more: a look-up in SQLite, the body and its metadata written to local files and fsynced (at
once, on threads), one SQLite commit. Before any load, the store itself is measured
(`store_ceiling.py`): the accepted callbacks a second it could take at two objects each, against
the rate the accepted target needs. Targets (busy and idle, 50 clients): accepted, not_found
and healthz p99 under 100 ms, metrics p99 under 250 ms. Exits 1 naming every target missed.

    python bench/callbacks.py                     # 1M-message busy window, 3 s per run
    python bench/callbacks.py --quick             # 100k messages, 1 s per run
    python bench/callbacks.py --messages 200000 --clients 1,10,50 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchlib import (
    DAY,
    S3_ENV,
    create_bucket,
    default_data_dir,
    export_file,
    link_server,
    percentile_ms,
    print_table,
    serve_env,
    stop_process,
)
from store_ceiling import Ceiling, measure

from archiver.embedded import free_port
from storage.layout import Window
from storage.ledger import ExportAttempt, Ledger
from storage.schema import STREAM
from storage.stores import S3Options, open_store

KINDS = ("accepted", "not_found", "healthz", "metrics")
TARGET_P99_MS = {"accepted": 100.0, "not_found": 100.0, "healthz": 100.0, "metrics": 250.0}
TARGET_CLIENTS = 50
# The accepted callbacks' body: a failure notice, so what the worker does with each is small
# and the busy window stays the only heavy work.
NOTICE = json.dumps({"status": "failed", "error": "bench"}).encode()
SMALL_WINDOW = timedelta(minutes=1)
# The floor app's kind for each kind sent to `serve`: accepted callbacks meet its durable route;
# a 404 meets its constant answer to a POST (the `accepted` kind, with no prepared paths).
FLOOR_KIND = {"accepted": "durable", "not_found": "accepted"}
UNKNOWN = f"/callbacks/{'0' * 32}/{'A' * 43}"

BASELINE_APP = """
import asyncio, json, os, sqlite3, sys, threading, uuid, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

ROOT = sys.argv[2]
_local = threading.local()
_writer = threading.Lock()

def _db():
    db = getattr(_local, "db", None)
    if db is None:
        db = _local.db = sqlite3.connect(os.path.join(ROOT, "floor.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("CREATE TABLE IF NOT EXISTS received (id TEXT PRIMARY KEY, body BLOB)")
    return db

def _look_up(export_id):
    return _db().execute("SELECT count(*) FROM received WHERE id = ?", (export_id,)).fetchone()

def _put(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)

def _record(export_id, body):
    with _writer:
        db = _db()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO received VALUES (?, ?)", (export_id, body))
        db.execute("COMMIT")

async def ok(request):
    await request.body()
    return JSONResponse({"status": "accepted"})

async def durable(request):
    export_id = request.path_params["a"]
    await asyncio.to_thread(_look_up, export_id)
    body = await request.body()
    key = os.path.join(ROOT, export_id, uuid.uuid4().hex)
    meta = json.dumps({"export_id": export_id, "bytes": len(body)}).encode()
    await asyncio.gather(
        asyncio.to_thread(_put, key + ".body", body), asyncio.to_thread(_put, key + ".json", meta)
    )
    await asyncio.to_thread(_record, export_id, body)
    return JSONResponse({"status": "accepted"})

async def health(request):
    return JSONResponse({"status": "ok"})

async def metrics(request):
    return Response("# metrics\\n", media_type="text/plain")

app = Starlette(routes=[
    Route("/callbacks/{a}/{b}", ok, methods=["POST"]),
    Route("/durable/{a}/{b}", durable, methods=["POST"]),
    Route("/healthz", health), Route("/metrics", metrics),
])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_config=None, access_log=False)
"""

MOTO = """
import sys, time, logging
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.WARNING)
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
print("up", flush=True)
while True:
    time.sleep(3600)
"""


@dataclass
class Result:
    latencies: list[float]
    statuses: dict[int, int]
    seconds: float

    def percentile(self, q: float) -> float:
        return percentile_ms(self.latencies, q)

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds if self.seconds else 0.0


# The load generator (runs in its own process: `callbacks.py --client`).


async def _one(host: str, port: int, raw: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(raw)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
    finally:
        writer.close()
    return status, time.perf_counter() - started


def _request(method: str, path: str, body: bytes = b"") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
        f"user-agent: bench\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _load(spec: dict[str, object]) -> dict[str, object]:
    host, port = "127.0.0.1", int(spec["port"])  # type: ignore[call-overload]
    clients = int(spec["clients"])  # type: ignore[call-overload]
    seconds = float(spec["seconds"])  # type: ignore[arg-type]
    kind = str(spec["kind"])
    interval = float(spec.get("interval", 0.0))  # type: ignore[arg-type]
    paths: list[str] = list(spec.get("paths", []))  # type: ignore[call-overload]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    deadline = time.monotonic() + seconds

    def next_request() -> bytes:
        if kind == "accepted":
            path = paths.pop() if paths else UNKNOWN
            return _request("POST", path, NOTICE)
        if kind == "not_found":
            return _request("POST", UNKNOWN, NOTICE)
        if kind == "durable":
            return _request("POST", f"/durable/{uuid.uuid4().hex}/{'A' * 43}", NOTICE)
        return _request("GET", f"/{kind}")

    async def client(number: int) -> None:
        # Paced clients start spread over one interval, then send one request per interval
        # (or back to back when a request takes longer); unpaced ones send back to back.
        next_at = time.monotonic() + interval * number / clients
        while time.monotonic() < deadline:
            if interval:
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                next_at += interval
            try:
                status, took = await _one(host, port, next_request())
            except (OSError, asyncio.IncompleteReadError):
                status, took = 0, 0.0
            statuses[status] = statuses.get(status, 0) + 1
            if status:
                latencies.append(took)

    started = time.monotonic()
    await asyncio.gather(*(client(number) for number in range(clients)))
    return {
        "latencies": latencies,
        "statuses": statuses,
        "seconds": time.monotonic() - started,
        "left": len(paths),
    }


def _client_main() -> int:
    spec = json.loads(sys.stdin.read())
    print(json.dumps(asyncio.run(_load(spec))))
    return 0


# The benchmark.


def _run_load(
    port: int, kind: str, clients: int, seconds: float, paths: list[str], interval: float
) -> tuple[Result, list[str]]:
    spec = {
        "port": port,
        "kind": kind,
        "clients": clients,
        "seconds": seconds,
        "paths": paths,
        "interval": interval,
    }
    done = subprocess.run(
        [sys.executable, __file__, "--client"],
        input=json.dumps(spec),
        capture_output=True,
        text=True,
        check=True,
    )
    out = json.loads(done.stdout)
    used = len(paths) - int(out["left"])
    result = Result(
        latencies=out["latencies"],
        statuses={int(k): v for k, v in out["statuses"].items()},
        seconds=out["seconds"],
    )
    return result, paths[: len(paths) - used]


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: the process exited {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def _process(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=out)
    try:
        yield process
    finally:
        stop_process(process)


def _exports(ledger: Ledger, count: int, start: datetime, width: timedelta) -> list[ExportAttempt]:
    windows = [Window(start + i * width, start + (i + 1) * width) for i in range(count)]
    ledger.plan(STREAM, windows)
    now = datetime.now(UTC)
    ledger.force_due(STREAM, windows, include_committed=True, now=now)
    return ledger.claim_due(
        STREAM, now, limit=count, callback_timeout=timedelta(days=30), max_attempts=5
    )


class BusyWindows:
    """Keeps one big window in processing: a link callback for the next prepared export."""

    def __init__(self, ledger: Ledger, base: str, link: str, attempts: list[ExportAttempt]):
        self._ledger = ledger
        self._base = base
        self._link = link
        self._attempts = attempts
        self._current: ExportAttempt | None = None

    def processing(self) -> bool:
        if self._current is None:
            return False
        record = self._ledger.window(STREAM, self._current.window)
        return record is not None and record.state == "received"

    def ensure(self) -> None:
        import httpx

        if self.processing():
            return
        if not self._attempts:
            raise RuntimeError("no prepared busy window left; raise --busy-windows")
        self._current = self._attempts.pop(0)
        body = json.dumps({"status": "completed", "url": self._link}).encode()
        url = f"{self._base}/callbacks/{self._current.export_id}/{self._current.token}"
        answer = httpx.post(url, content=body, timeout=30)
        if answer.status_code != 200:
            raise RuntimeError(f"the busy window's callback got {answer.status_code}")
        # Past the download's first second, into decoding and writing.
        time.sleep(1.0)

    def wait_done(self, timeout: float = 600) -> None:
        """Until the worker has nothing left: the busy window, and the failure notices the
        accepted callbacks of the last runs brought, so the next idle run is idle."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            received = self._ledger.state_counts(STREAM).by_state.get("received", 0)
            if not received:
                return
            time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.client:
        return _client_main()
    messages = 100_000 if args.quick else args.messages
    seconds = 1.0 if args.quick else args.seconds
    client_counts = [int(n) for n in args.clients.split(",")]
    kinds = [kind for kind in args.kinds.split(",") if kind]
    rows: list[tuple[str, str, int, Result, Result | None, bool]] = []
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.work_dir)))
        env = {"PATH": os.environ.get("PATH", ""), **S3_ENV}
        for name, value in S3_ENV.items():
            os.environ.setdefault(name, value)
        big = export_file(args.data_dir, messages)
        links = stack.enter_context(link_server(args.data_dir))

        endpoint: str | None = None
        storage_url = (work / "lake").as_uri()
        ceiling_url = (work / "ceiling").as_uri()
        if args.store == "s3":
            moto_port = free_port()
            moto = stack.enter_context(
                _process([sys.executable, "-c", MOTO, str(moto_port)], env, work / "moto.log")
            )
            endpoint = f"http://127.0.0.1:{moto_port}"
            _wait_http(endpoint, moto)
            create_bucket(endpoint, "bench")
            storage_url = "s3://bench/lake"
            ceiling_url = "s3://bench/ceiling"

        ceiling: Ceiling | None = None
        if "accepted" in kinds:
            ceiling = measure(open_store(ceiling_url, S3Options(endpoint_url=endpoint)))
            print(f"store ceiling: {ceiling.writes_per_second:.0f} writes/s", file=sys.stderr)

        baseline_port = free_port()
        floor_root = work / "floor"
        floor_root.mkdir()
        baseline = stack.enter_context(
            _process(
                [sys.executable, "-c", BASELINE_APP, str(baseline_port), str(floor_root)],
                env,
                work / "base.log",
            )
        )
        _wait_http(f"http://127.0.0.1:{baseline_port}/healthz", baseline)

        ledger_url = f"sqlite:///{work}/ledger.db"
        ledger = stack.enter_context(Ledger.open(ledger_url))
        per_run = int(args.max_rate * seconds)
        small = _exports(ledger, per_run * len(client_counts) * 2, DAY, SMALL_WINDOW)
        paths = [f"/callbacks/{a.export_id}/{a.token}" for a in small]
        first_busy = DAY - timedelta(days=args.busy_windows + 1)
        busy_attempts = _exports(ledger, args.busy_windows, first_busy, timedelta(days=1))
        port = free_port()
        env_of_serve = serve_env(
            port, ledger_url, storage_url, endpoint, work, log_level="WARNING"
        ) | {"ARCHIVER_REQUEST_INTERVAL": "1h"}
        serve = stack.enter_context(
            _process(
                [sys.executable, "-m", "archiver.cli", "serve"], env_of_serve, work / "serve.log"
            )
        )
        base = f"http://127.0.0.1:{port}"
        _wait_http(f"{base}/healthz", serve)
        busy = BusyWindows(ledger, base, f"{links}/{big.name}", busy_attempts)
        print(f"busy window: {messages} messages ({big.name})", file=sys.stderr)

        for clients in client_counts:
            for kind in kinds:
                floor_kind = FLOOR_KIND.get(kind, kind)
                interval = args.interval
                floor, _ = _run_load(baseline_port, floor_kind, clients, seconds, [], interval)
                busy.wait_done()
                idle, paths = _run_load(port, kind, clients, seconds, paths, interval)
                rows.append(("idle", kind, clients, idle, floor, True))
                busy.ensure()
                loaded, paths = _run_load(port, kind, clients, seconds, paths, interval)
                rows.append(("busy", kind, clients, loaded, floor, busy.processing()))
                print(f"  {clients} clients, {kind}: done", file=sys.stderr)
                busy.wait_done()
    return _report(rows, ceiling)


def _report(
    rows: list[tuple[str, str, int, Result, Result | None, bool]], ceiling: Ceiling | None
) -> int:
    table = []
    missed = []
    for state, kind, clients, result, floor, covered in rows:
        p50, p99 = result.percentile(0.5), result.percentile(0.99)
        floor_p99 = floor.percentile(0.99) if floor else float("nan")
        unavailable = result.statuses.get(503, 0)
        errors = sum(n for status, n in result.statuses.items() if status not in (200, 404, 503))
        table.append(
            [
                state + ("" if covered else "*"),
                kind,
                str(clients),
                str(len(result.latencies)),
                f"{result.rate:.0f}",
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{max(result.latencies, default=0) * 1000:.1f}",
                f"{floor.rate:.0f}" if floor else "-",
                f"{floor_p99:.1f}",
                f"{p99 / floor_p99:.1f}x" if floor else "-",
                str(unavailable),
                str(errors),
            ]
        )
        if clients == TARGET_CLIENTS and p99 >= TARGET_P99_MS[kind]:
            missed.append(f"{kind} p99 {p99:.0f} ms >= {TARGET_P99_MS[kind]:.0f} ms ({state})")
        if errors or unavailable:
            missed.append(
                f"{kind} ({state}, {clients} clients): {unavailable} answers 503, "
                f"{errors} other failures"
            )
    print_table(
        [
            "state",
            "request",
            "clients",
            "n",
            "req/s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "floor req/s",
            "floor p99",
            "p99/floor",
            "503",
            "failed",
        ],
        table,
    )
    print("* the busy window was committed before this run ended")
    print(
        "floor: a bare Starlette app under uvicorn, same load; for accepted callbacks it does the"
        " same durable work (a look-up, two fsynced files, one SQLite commit); failed: no HTTP"
        " answer"
    )
    if ceiling is not None:
        print(ceiling.explain(TARGET_CLIENTS, TARGET_P99_MS["accepted"]))
    for line in missed:
        print(f"MISSED: {line}")
    return 1 if missed else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1_000_000, help="busy window size")
    parser.add_argument("--seconds", type=float, default=3.0, help="length of each run")
    parser.add_argument("--clients", default="1,10,50")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--interval",
        type=float,
        default=0.0,
        help="seconds between one client's requests (default 0: back to back, a closed loop)",
    )
    parser.add_argument(
        "--store",
        choices=("s3", "file"),
        default="s3",
        help="s3: moto's server on loopback (default); file: a local directory, which takes "
        "far more writes a second than moto (see docs/performance.md)",
    )
    parser.add_argument("--quick", action="store_true", help="100k messages, 1 s runs")
    parser.add_argument("--busy-windows", type=int, default=30)
    parser.add_argument(
        "--max-rate", type=float, default=600, help="accepted callbacks prepared per second"
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    sys.exit(main())
