"""The soak's world: the service's replicas as subprocesses, moto's S3 server, a fresh Postgres
database, small spools, and a watch on every replica's /healthz and /metrics."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from archiver.embedded import free_port

S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
SPOOL_BYTES = 64 * 1024 * 1024


@dataclass
class Replica:
    index: int
    port: int
    env: dict[str, str]
    log: Path
    spool: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "archiver.cli", "serve"],
                env=self.env,
                stdout=out,
                stderr=out,
            )

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | S3_ENV,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url, 30)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextlib.contextmanager
def postgres_database(base: str) -> Iterator[tuple[str, str, int]]:
    """A fresh database on the machine's Postgres: (name, host, port); dropped afterwards."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    url = make_url(base)
    params: dict[str, Any] = {
        "host": url.host or "127.0.0.1",
        "port": url.port or 5432,
        "dbname": url.database or "postgres",
        "user": url.username or "postgres",
        "connect_timeout": 5,
        "autocommit": True,
    }
    name = f"soak_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(**params) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield name, params["host"], params["port"]
    finally:
        with psycopg.connect(**params) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@contextlib.contextmanager
def spools(work: Path, count: int) -> Iterator[tuple[list[Path], bool]]:
    """One small tmpfs per replica as its TMPDIR (plain directories if mounting is refused)."""
    paths = [work / f"spool-{i}" for i in range(count)]
    mounted = []
    for path in paths:
        path.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SPOOL_BYTES}", "tmpfs", str(path)],
            capture_output=True,
        )
        if done.returncode == 0:
            mounted.append(path)
    try:
        yield paths, len(mounted) == count
    finally:
        for path in mounted:
            subprocess.run(["umount", "-l", str(path)], check=False)


def wait_http(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


class Watch:
    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.max_healthz = [0.0] * len(replicas)
        self.max_healthz_at = [0.0] * len(replicas)  # seconds since the clock below started
        self.clock = time.monotonic()
        self.healthz_timeouts = [0] * len(replicas)
        self.scrapes_failed = [0] * len(replicas)
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=loop, args=(i,), daemon=True)
            for i in range(len(replicas))
            for loop in (self._healthz, self._scrape)
        ]

    def __enter__(self) -> Watch:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)

    def _healthz(self, index: int) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(0.25):
                started = time.monotonic()
                try:
                    client.get(f"{self.replicas[index].url}/healthz")
                except httpx.ConnectError:
                    continue  # the process is down (a SIGKILL fault), not slow
                except httpx.TimeoutException:
                    self.healthz_timeouts[index] += 1
                except httpx.TransportError:
                    continue
                latency = time.monotonic() - started
                if latency > self.max_healthz[index]:
                    self.max_healthz[index] = latency
                    self.max_healthz_at[index] = started - self.clock

    def _scrape(self, index: int) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.wait(2.0):
                try:
                    client.get(f"{self.replicas[index].url}/metrics")
                except httpx.TransportError:
                    self.scrapes_failed[index] += 1
