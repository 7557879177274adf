"""Backfill benchmark: `chat-archiver backfill` of N one-day windows against the simulator,
with one and with two `serve` replicas on one Postgres ledger, request pacing 0.

Every process is a subprocess as in production: the simulator (`python -m simulator`), the
replicas (`chat-archiver serve`, each on its own port, a shared local archive) and the
`backfill` command itself, whose requests carry the first replica's callback URL; the other
replica's worker picks received windows up from the ledger. Timed from the start of `backfill`
to its exit (every window committed). The simulator's own log of export requests gives the
request rate it saw. Exits 1 if two replicas are not faster than one.

    python bench/backfill.py                          # 60 windows of 20000 messages
    python bench/backfill.py --windows 10 --messages 2000
    ARCHIVER_BENCH_POSTGRES_URL=postgresql+psycopg://... python bench/backfill.py
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from benchlib import print_table

from archiver.embedded import free_port

KEY = "bench-backfill-key"
FIRST_DAY = datetime(2025, 1, 1, tzinfo=UTC)
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    results = []
    for replicas in args.replicas:
        for turn in range(args.repeat):
            print(f"{replicas} replica(s), run {turn + 1}/{args.repeat} ...", file=sys.stderr)
            results.append((replicas, _run(args, replicas)))
    rows = []
    medians: dict[int, float] = {}
    for replicas in args.replicas:
        mine = [run for count, run in results if count == replicas]
        seconds = statistics.median(run["seconds"] for run in mine)
        medians[replicas] = seconds
        rows.append(
            [
                str(replicas),
                str(args.windows),
                f"{args.messages:,}",
                f"{seconds:.1f}",
                f"{min(r['seconds'] for r in mine):.1f}-{max(r['seconds'] for r in mine):.1f}",
                f"{args.windows / seconds * 60:.0f}",
                str(max(r["requests"] for r in mine)),
                f"{statistics.median(r['rate'] for r in mine):.1f}",
            ]
        )
    print(f"backfill: median of {args.repeat} run(s), request pacing 0")
    header = ["replicas", "windows", "messages each", "seconds", "range", "windows/min"]
    print_table([*header, "requests seen", "requests/s seen"], rows)
    if 1 in medians and 2 in medians:
        speedup = medians[1] / medians[2]
        print(f"\ntwo replicas / one: {speedup:.2f}x faster")
        if speedup <= 1.0:
            print("target missed: two replicas are not faster than one", file=sys.stderr)
            return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--windows", type=int, default=60)
    parser.add_argument("--messages", type=int, default=20_000, help="per window (day)")
    parser.add_argument(
        "--replicas",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[1, 2],
        help="comma-separated replica counts (default 1,2)",
    )
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--work-dir", type=Path)
    parser.add_argument("--timeout", type=float, default=1800)
    return parser


def _run(args: argparse.Namespace, replicas: int) -> dict[str, float]:
    with (
        tempfile.TemporaryDirectory(prefix="bench-backfill-", dir=args.work_dir) as tmp,
        _database() as ledger_url,
        _simulator(args.messages, Path(tmp)) as simulator,
    ):
        work = Path(tmp)
        ports = [free_port() for _ in range(replicas)]
        env = _env(simulator, ledger_url, work, ports[0])
        processes = []
        try:
            for number, port in enumerate(ports):
                log = (work / f"serve-{number}.log").open("ab")
                mine = env | {"ARCHIVER_PORT": str(port)}
                mine["ARCHIVER_PUBLIC_URL"] = f"http://127.0.0.1:{port}"
                processes.append(
                    subprocess.Popen(
                        [sys.executable, "-m", "archiver.cli", "serve"],
                        env=mine,
                        stdout=log,
                        stderr=log,
                    )
                )
            for port, process in zip(ports, processes, strict=True):
                _wait_healthy(f"http://127.0.0.1:{port}", process)
            until = FIRST_DAY + timedelta(days=args.windows)
            started = time.perf_counter()
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "archiver.cli",
                    "backfill",
                    "--since",
                    FIRST_DAY.date().isoformat(),
                    "--until",
                    until.date().isoformat(),
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=args.timeout,
                check=False,
            )
            seconds = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"backfill exited {done.returncode}: {done.stderr[-2000:]}")
        finally:
            for process in processes:
                process.send_signal(signal.SIGTERM)
            for process in processes:
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        sent = httpx.get(f"{simulator}/_sim/state").json()["export_requests"]
        times = sorted(datetime.fromisoformat(entry["receivedAt"]) for entry in sent)
        span = (times[-1] - times[0]).total_seconds() if len(times) > 1 else 0.0
        rate = (len(times) - 1) / span if span else float(len(times))
        return {"seconds": seconds, "requests": len(times), "rate": rate}


def _env(simulator: str, ledger_url: str, work: Path, first_port: int) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        "ARCHIVER_API_URL": simulator,
        "ARCHIVER_API_KEY": KEY,
        "ARCHIVER_PUBLIC_URL": f"http://127.0.0.1:{first_port}",
        "ARCHIVER_ALLOW_INSECURE_CALLBACKS": "1",
        "ARCHIVER_DOWNLOAD_ALLOW_PRIVATE": "1",
        "ARCHIVER_LEDGER_URL": ledger_url,
        "ARCHIVER_STORAGE_URL": f"file://{work}/archive",
        "ARCHIVER_REQUEST_PACING": "0s",
        "ARCHIVER_REQUESTS_PER_TICK": "100",
        "ARCHIVER_WORKER_POLL": "1s",
        "ARCHIVER_SCHEDULE": "0 0 1 1 *",
        "ARCHIVER_START": "2099-01-01",
        "ARCHIVER_LOG_LEVEL": "WARNING",
        "TMPDIR": str(work),
    }


@contextmanager
def _simulator(messages: int, work: Path) -> Iterator[str]:
    port = free_port()
    files = work / "simulator-files"
    files.mkdir()
    log = (work / "simulator.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "simulator",
            "--port",
            str(port),
            "--api-key",
            KEY,
            "--messages-per-day",
            str(messages),
            "--allow-insecure-callbacks",
            "--callback-delay",
            "0",
            "--file-dir",
            str(files),
            "--log-level",
            "warning",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, process, path="/_sim/state")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


@contextmanager
def _database() -> Iterator[str]:
    """A new Postgres database, dropped afterwards."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    base = make_url(os.environ.get("ARCHIVER_BENCH_POSTGRES_URL", DEFAULT_POSTGRES))
    params: dict[str, object] = {
        "host": base.host or "127.0.0.1",
        "port": base.port or 5432,
        "dbname": base.database or "postgres",
    }
    if base.username:
        params["user"] = base.username
    if base.password:
        params["password"] = base.password
    name = f"bench_backfill_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(autocommit=True, connect_timeout=5, **params) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(autocommit=True, connect_timeout=5, **params) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _wait_healthy(base: str, process: subprocess.Popen[bytes], path: str = "/healthz") -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{base}: the process exited {process.returncode}")
        try:
            if httpx.get(f"{base}{path}", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{base} did not come up within 60s")


if __name__ == "__main__":
    sys.exit(main())
