"""Soak: `chat-archiver serve` for a set time against the simulator, a real S3 server (moto)
and PostgreSQL, while a schedule of faults is injected; then every window is checked.

    python bench/soak.py --quick              # one pass of the schedule, about 3 minutes
    python bench/soak.py --duration 1800      # the schedule repeated for 30 minutes
    python bench/soak.py --quick --replicas 2 # two replicas on one Postgres ledger

Faults: S3 stopped then started and S3 stalled (a TCP proxy in front of moto that refuses, or
stops forwarding), Postgres restarted (every connection cut, refused for a while) and stalled
(a TCP proxy in front of the machine's Postgres; the server itself is never touched), `serve`
SIGKILLed and started again, callbacks dropped, duplicated and delayed past the callback
timeout (the simulator's fault switches), the spool nearly full (a ballast file on the small
tmpfs that is each replica's TMPDIR, when mounting one is allowed).

It prints the faults injected, then: windows committed / expected, rows exact against the
corpus, duplicate rows in what a reader globbing the prefix sees, stale parts (in the bucket but
in no manifest), the longest `/healthz` answer; and exits 1 on any loss.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
from faultproxy import FaultProxy
from soakcheck import Verdict, verify, wait_committed
from soakworld import S3_ENV, Replica, Watch, moto_server, postgres_database, spools, wait_http

from archiver.embedded import free_port, running
from scheduler.planner import align_down
from simulator.app import create_app as create_simulator
from simulator.config import SimulatorConfig
from simulator.corpus import MessageCorpus
from storage.layout import Window
from storage.objectstore import S3Options, open_store

API_KEY = "soak-key-6b1f0c2e9a"
SEED = 29
# Ten-second windows, a backlog of about one per second of faults, and one export request per
# one-second tick: windows flow through every fault instead of arriving once a minute.
WINDOW = timedelta(seconds=10)
CALLBACK_TIMEOUT = 20  # seconds; the "delayed" fault delays callbacks past it
MESSAGES_PER_DAY = 500_000  # about 58 per window
BUCKET = "soak"


# The world the service runs in.


@dataclass
class Injected:
    name: str
    at: float
    lasted: float
    detail: str


@dataclass
class World:
    work: Path
    simulator_url: str
    moto_url: str
    s3_proxy: FaultProxy
    pg_proxy: FaultProxy
    ledger_url: str  # straight to Postgres, for the checks
    replicas: list[Replica]
    spool_mounted: bool
    started: float = field(default_factory=time.monotonic)
    injected: list[Injected] = field(default_factory=list)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def faults(self, **switches: Any) -> None:
        httpx.post(
            f"{self.simulator_url}/_sim/faults", json=switches, timeout=10
        ).raise_for_status()


def replica_env(
    index: int, port: int, world_urls: dict[str, str], start: datetime, spool: Path
) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", ""),
        **S3_ENV,
        "TMPDIR": str(spool),
        "ARCHIVER_API_URL": world_urls["simulator"],
        "ARCHIVER_API_KEY": API_KEY,
        "ARCHIVER_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "ARCHIVER_ALLOW_INSECURE_CALLBACKS": "1",
        "ARCHIVER_DOWNLOAD_ALLOW_PRIVATE": "1",
        "ARCHIVER_PORT": str(port),
        "ARCHIVER_LEDGER_URL": world_urls["ledger"],
        "ARCHIVER_STORAGE_URL": f"s3://{BUCKET}/lake",
        "ARCHIVER_S3_ENDPOINT_URL": world_urls["s3"],
        "ARCHIVER_WINDOW": "10s",
        "ARCHIVER_REQUESTS_PER_TICK": "1",
        "ARCHIVER_START": start.isoformat(),
        "ARCHIVER_SCHEDULE": "* * * * *",
        "ARCHIVER_SETTLE_DELAY": "0s",
        "ARCHIVER_CALLBACK_TIMEOUT": f"{CALLBACK_TIMEOUT}s",
        "ARCHIVER_MAX_ATTEMPTS": "100",
        "ARCHIVER_REQUEST_INTERVAL": "1s",
        "ARCHIVER_REQUEST_PACING": "0s",
        "ARCHIVER_WORKER_POLL": "1s",
        "ARCHIVER_LEASE": "15s",
        "ARCHIVER_LOG_LEVEL": "INFO",
    }


# The fault schedule: (offset in seconds from the start of a pass, name, duration, action).

Fault = Callable[[World, float], str]


def s3_stopped(world: World, seconds: float) -> str:
    world.s3_proxy.stop()
    time.sleep(seconds)
    world.s3_proxy.start()
    return "S3 endpoint refused connections, then came back"


def s3_stalled(world: World, seconds: float) -> str:
    world.s3_proxy.stall()
    time.sleep(seconds)
    world.s3_proxy.start()
    return "S3 proxy accepted but forwarded nothing"


def pg_restarted(world: World, seconds: float) -> str:
    world.pg_proxy.stop()
    time.sleep(seconds)
    world.pg_proxy.start()
    return "every Postgres connection cut, refused, then accepted again"


def pg_stalled(world: World, seconds: float) -> str:
    world.pg_proxy.stall()
    time.sleep(seconds)
    world.pg_proxy.start()
    return "Postgres proxy accepted but forwarded nothing"


def serve_killed(world: World, seconds: float) -> str:
    replica = world.replicas[0]
    replica.kill()
    time.sleep(seconds)
    replica.start()
    return f"replica 0 SIGKILLed, started again {seconds:.0f}s later"


def callbacks_dropped(world: World, seconds: float) -> str:
    world.faults(drop_callbacks=3)
    time.sleep(seconds)
    return "the next 3 callbacks never sent"


def callbacks_duplicated(world: World, seconds: float) -> str:
    world.faults(duplicate_callbacks=2)
    time.sleep(seconds)
    world.faults(duplicate_callbacks=0)
    return "every callback sent 3 times"


def callbacks_delayed(world: World, seconds: float) -> str:
    delay = CALLBACK_TIMEOUT + 8
    world.faults(callback_delay=delay)
    time.sleep(seconds)
    world.faults(callback_delay=0.2)
    return f"callbacks sent {delay}s late (callback timeout {CALLBACK_TIMEOUT}s)"


def spool_nearly_full(world: World, seconds: float) -> str:
    if not world.spool_mounted:
        time.sleep(seconds)
        return "skipped: no small filesystem could be mounted for the spool"
    ballasts = []
    for replica in world.replicas:
        ballast = replica.spool / "ballast"
        free = shutil.disk_usage(replica.spool).free
        with ballast.open("wb") as out:
            os.posix_fallocate(out.fileno(), 0, max(0, free - 1024 * 1024))
        ballasts.append(ballast)
    time.sleep(seconds)
    for ballast in ballasts:
        ballast.unlink()
    return "each spool filled to 1 MB free"


SCHEDULE: list[tuple[float, str, float, Fault]] = [
    (8, "s3_stopped", 8, s3_stopped),
    (22, "s3_stalled", 8, s3_stalled),
    (36, "pg_restarted", 3, pg_restarted),
    (45, "pg_stalled", 8, pg_stalled),
    (59, "serve_sigkilled", 2, serve_killed),
    (68, "callbacks_dropped", 1, callbacks_dropped),
    (74, "callbacks_duplicated", 10, callbacks_duplicated),
    (90, "callbacks_delayed", 10, callbacks_delayed),
    (106, "spool_nearly_full", 10, spool_nearly_full),
]
PASS_SECONDS = 125.0


def run_schedule(world: World, total: float) -> None:
    passes = max(1, int(total // PASS_SECONDS))
    for number in range(passes):
        base = number * PASS_SECONDS
        for offset, name, seconds, fault in SCHEDULE:
            _sleep_until(world, base + offset)
            at = world.elapsed()
            detail = fault(world, seconds)
            world.injected.append(Injected(name, at, world.elapsed() - at, detail))
            print(f"  {at:7.1f}s  {name:<22} {detail}", file=sys.stderr, flush=True)
    _sleep_until(world, passes * PASS_SECONDS)


def _sleep_until(world: World, offset: float) -> None:
    remaining = offset - world.elapsed()
    if remaining > 0:
        time.sleep(remaining)


# The report.


def report(world: World, watch: Watch, verdict: Verdict, seconds: float) -> None:
    print()
    print(f"Faults injected ({len(world.injected)}, over {seconds:.0f}s)")
    print(f"  {'at (s)':>7}  {'fault':<22} {'lasted (s)':>10}  detail")
    for fault in world.injected:
        print(f"  {fault.at:7.1f}  {fault.name:<22} {fault.lasted:10.1f}  {fault.detail}")
    simulator = httpx.get(f"{world.simulator_url}/_sim/state", timeout=10).json()
    outcomes: dict[str, int] = {}
    for callback in simulator.get("callbacks", []):
        if callback.get("kind") == "dropped":
            outcome = "dropped"
        elif callback.get("answer"):
            outcome = f"HTTP {callback['answer']}"
        else:
            outcome = "no answer"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    print()
    print("Result")
    rows = [
        ("replicas", str(len(world.replicas))),
        ("export requests seen by the platform", str(len(simulator["export_requests"]))),
        (
            "callback deliveries by outcome",
            ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        ),
        ("windows by state", ", ".join(f"{k} {v}" for k, v in sorted(verdict.states.items()))),
        ("windows committed / expected", f"{verdict.committed} / {verdict.expected}"),
        (
            "rows exact against the corpus",
            f"{'yes' if verdict.rows_exact else 'NO'} ({verdict.rows_found} of "
            f"{verdict.rows_expected} rows)",
        ),
        ("duplicate rows (reader globbing the prefix)", str(verdict.duplicates)),
        ("stale parts (in no manifest)", str(verdict.stale_parts)),
        ("other verify problems", str(len(verdict.other_problems))),
        (
            "max /healthz latency",
            ", ".join(
                f"{latency:.3f}s at {at:.0f}s ({_during(world, at)})"
                for latency, at in zip(watch.max_healthz, watch.max_healthz_at, strict=True)
            ),
        ),
        ("/healthz timeouts (10 s)", ", ".join(str(n) for n in watch.healthz_timeouts)),
        ("/metrics scrapes failed", ", ".join(str(n) for n in watch.scrapes_failed)),
        ("SIGKILLs", ", ".join(str(r.kills) for r in world.replicas)),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    for problem in verdict.other_problems[:10]:
        print(f"  problem: {problem}")
    print()
    print("LOSS" if verdict.lost else "no loss")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one pass of the fault schedule")
    parser.add_argument("--duration", type=float, default=None, help="seconds of faults")
    parser.add_argument("--replicas", type=int, default=1, choices=(1, 2))
    parser.add_argument(
        "--drain",
        type=float,
        default=90.0,
        help="after the faults, wait until no window was committed for this long",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "ARCHIVER_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    for name, value in S3_ENV.items():
        os.environ.setdefault(name, value)
    total = PASS_SECONDS if args.quick or args.duration is None else args.duration
    work = Path(tempfile.mkdtemp(prefix="chat-archiver-soak-"))
    print(
        f"soak: {total:.0f}s of faults, {args.replicas} replica(s), work in {work}", file=sys.stderr
    )
    try:
        return _soak(work, total, args.replicas, args.drain, args.postgres)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def _soak(work: Path, total: float, replica_count: int, drain: float, postgres: str) -> int:
    config = SimulatorConfig(
        api_key=API_KEY,
        seed=SEED,
        messages_per_day=MESSAGES_PER_DAY,
        allow_insecure_callbacks=True,
        callback_delay=0.2,
        callback_retries=4,
        callback_retry_delay=0.5,
        callback_timeout=10.0,
    )
    sim_port = free_port()
    with (
        running(create_simulator(config), "127.0.0.1", sim_port),
        moto_server() as moto_url,
        postgres_database(postgres) as (database, pg_host, pg_port),
        spools(work, replica_count) as (spool_paths, mounted),
    ):
        boto3.client(
            "s3", endpoint_url=moto_url, region_name="us-east-1", **_creds()
        ).create_bucket(Bucket=BUCKET)
        s3_proxy = FaultProxy("127.0.0.1", int(moto_url.rsplit(":", 1)[1]), free_port())
        pg_proxy = FaultProxy(pg_host, pg_port, free_port())
        direct = f"postgresql+psycopg://postgres@{pg_host}:{pg_port}/{database}"
        urls = {
            "simulator": f"http://127.0.0.1:{sim_port}",
            "s3": f"http://{s3_proxy.url_host}",
            "ledger": f"postgresql+psycopg://postgres@{pg_proxy.url_host}/{database}"
            "?connect_timeout=5",
        }
        backlog = int(min(total, 600.0))
        start = align_down(datetime.now(UTC), WINDOW) - backlog * WINDOW
        replicas = []
        for index in range(replica_count):
            port = free_port()
            env = replica_env(index, port, urls, start, spool_paths[index])
            replicas.append(
                Replica(index, port, env, work / f"serve-{index}.log", spool_paths[index])
            )
        world = World(
            work, urls["simulator"], moto_url, s3_proxy, pg_proxy, direct, replicas, mounted
        )
        for replica in replicas:
            replica.start()
        for replica in replicas:
            wait_http(f"{replica.url}/healthz", 60)
        try:
            with Watch(replicas) as watch:
                world.started = watch.clock = time.monotonic()
                run_schedule(world, total)
                faults_end = datetime.now(UTC)
                windows = _windows(start, faults_end)
                print(f"soak: faults over; draining {len(windows)} windows", file=sys.stderr)
                wait_committed(direct, windows, drain)
            for replica in replicas:
                replica.stop()
            store = open_store(f"s3://{BUCKET}/lake", S3Options(endpoint_url=moto_url))
            verdict = verify(store, direct, windows, MessageCorpus(SEED, MESSAGES_PER_DAY))
        finally:
            for replica in replicas:
                replica.kill()
            s3_proxy.close()
            pg_proxy.close()
        report(world, watch, verdict, total)
        if verdict.lost:
            for replica in replicas:
                print(f"--- tail of {replica.log}", file=sys.stderr)
                print(replica.log.read_text(errors="replace")[-3000:], file=sys.stderr)
        return 1 if verdict.lost else 0


def _windows(start: datetime, until: datetime) -> list[Window]:
    windows = []
    moment = start
    while moment + WINDOW <= align_down(until, WINDOW):
        windows.append(Window(moment, moment + WINDOW))
        moment += WINDOW
    return windows


def _during(world: World, at: float) -> str:
    """The fault that was going on (or had just ended) at `at` seconds."""
    for fault in world.injected:
        if fault.at <= at <= fault.at + fault.lasted + 2:
            return f"during {fault.name}"
    return "no fault"


def _creds() -> dict[str, str]:
    return {
        "aws_access_key_id": S3_ENV["AWS_ACCESS_KEY_ID"],
        "aws_secret_access_key": S3_ENV["AWS_SECRET_ACCESS_KEY"],
    }


if __name__ == "__main__":
    sys.exit(main())
