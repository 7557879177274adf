"""Two `serve` replicas on one Postgres ledger and one bucket, behind a load balancer.

Each window is requested once and committed once however the replicas race, callbacks may
land on either, and a replica killed mid-window loses it to the other once its lease ends.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, create_engine, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from simulator.app import create_app as create_simulator
from simulator.state import range_key
from storage.layout import Window, manifest_key
from storage.ledger import Ledger
from storage.ledger.tables import windows as window_rows
from storage.objectstore import ObjectStore
from storage.schema import STREAM
from storage.stores import S3Options, open_store
from tests.harness import (
    ServiceProcess,
    archived_as_api_records,
    expected_messages,
    loopback_simulator,
    read_archive,
    recent_hours,
    service_env,
    wait_for_states,
)
from tests.servers import SlowFiles, free_port, serve_in_thread

HOUR = timedelta(hours=1)
SEED = 17
PER_DAY = 960
# The first two callbacks go to different replicas with this seed.
BALANCER_SEED = 3
# Hop-by-hop and recomputed headers, not forwarded.
_DROP_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


class Balancer:
    """A load balancer for the replicas: each callback goes to a replica picked at random, and
    to the other one if that one does not answer (a dead replica), as a health-checking
    balancer does."""

    def __init__(self, seed: int) -> None:
        self.replicas: list[str] = []
        self.hits: Counter[str] = Counter()
        self._random = random.Random(seed)

    def app(self) -> Starlette:
        async def forward(request: Request) -> Response:
            body = await request.body()
            headers = {
                name: value
                for name, value in request.headers.items()
                if name.lower() not in _DROP_HEADERS
            }
            order = self._random.sample(self.replicas, len(self.replicas))
            async with httpx.AsyncClient(timeout=30) as client:
                for replica in order:
                    try:
                        answer = await client.post(
                            f"{replica}{request.url.path}", content=body, headers=headers
                        )
                    except httpx.TransportError:
                        continue
                    self.hits[replica] += 1
                    return Response(
                        answer.content,
                        status_code=answer.status_code,
                        media_type=answer.headers.get("content-type"),
                    )
            return Response(b"no replica answered", status_code=502)

        return Starlette(routes=[Route("/callbacks/{rest:path}", forward, methods=["POST"])])


class Cluster:
    """The simulator, the balancer and two replicas sharing a Postgres ledger and a bucket."""

    def __init__(self, simulator_url: str, env: dict[str, str], tmp_path: Path) -> None:
        self.simulator_url = simulator_url
        self.env = env
        self.replicas = [
            ServiceProcess(env | {"ARCHIVER_PORT": str(free_port())}, tmp_path / f"replica-{i}.log")
            for i in range(2)
        ]

    def start(self) -> None:
        """Both at once, so they race for the same windows from their first tick."""
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(ServiceProcess.start, self.replicas))

    def stop(self) -> None:
        for replica in self.replicas:
            replica.kill()

    def requests(self, windows: list[Window]) -> list[int]:
        counts = httpx.get(f"{self.simulator_url}/_sim/state").json()["export_requests_by_range"]
        return [counts.get(range_key(w.start, w.end), 0) for w in windows]

    def store(self) -> ObjectStore:
        options = S3Options(endpoint_url=self.env["ARCHIVER_S3_ENDPOINT_URL"])
        return open_store(self.env["ARCHIVER_STORAGE_URL"], options)

    def events(self, replica: ServiceProcess, event: str) -> list[dict[str, object]]:
        found = []
        for line in replica.log_path.read_text().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry["event"] == event:
                    found.append(entry)
        return found

    def per_window(self, event: str) -> Counter[str]:
        return Counter(
            str(entry["window"])
            for replica in self.replicas
            for entry in self.events(replica, event)
        )


@pytest.fixture
def balancer() -> Iterator[tuple[Balancer, str]]:
    front = Balancer(BALANCER_SEED)
    with serve_in_thread(front.app()) as url:
        yield front, url


def _cluster_env(
    simulator_url: str,
    balancer_url: str,
    ledger_url: str,
    s3_bucket: str,
    s3_endpoint: str,
    windows: list[Window],
    **extra: str,
) -> dict[str, str]:
    env = service_env(
        api_url=simulator_url,
        ledger_url=ledger_url,
        storage_url=f"s3://{s3_bucket}/lake",
        port=0,
        s3_endpoint=s3_endpoint,
        ARCHIVER_WINDOW="1h",
        ARCHIVER_START=windows[0].start.isoformat(),
        **extra,
    )
    env["ARCHIVER_PUBLIC_URL"] = balancer_url
    return env


def _assert_archive_exact(store: ObjectStore, windows: list[Window]) -> None:
    table = read_archive(store)
    expected = expected_messages(SEED, PER_DAY, windows)
    assert table.num_rows == len(expected)
    assert archived_as_api_records(table) == expected
    for window in windows:
        manifest = json.loads(store.get_bytes(manifest_key(window)))
        assert manifest["rows"] == len(expected_messages(SEED, PER_DAY, [window]))


def test_two_replicas_request_each_window_once_and_commit_it_once(
    fresh_postgres_url: str,
    s3_bucket: str,
    s3_endpoint: str,
    balancer: tuple[Balancer, str],
    tmp_path: Path,
) -> None:
    front, front_url = balancer
    windows = recent_hours(6)
    with serve_in_thread(create_simulator(loopback_simulator(SEED, PER_DAY))) as simulator_url:
        env = _cluster_env(
            simulator_url, front_url, fresh_postgres_url, s3_bucket, s3_endpoint, windows
        )
        cluster = Cluster(simulator_url, env, tmp_path)
        front.replicas = [replica.url for replica in cluster.replicas]
        cluster.start()
        try:
            with Ledger.open(fresh_postgres_url) as ledger:
                records = wait_for_states(ledger, len(windows), timeout=60)
            requests = cluster.requests(windows)
            total = httpx.get(f"{simulator_url}/_sim/state").json()["export_requests_total"]
        finally:
            cluster.stop()

    assert requests == [1] * len(windows)
    assert total == len(windows)
    assert [record.attempts for record in records] == [1] * len(windows)
    names = [str(window) for window in windows]
    assert cluster.per_window("window_requested") == Counter(names)
    assert cluster.per_window("window_committed") == Counter(names)
    # Callbacks reached both replicas.
    assert set(front.hits) == set(front.replicas)
    assert sum(front.hits.values()) == len(windows)
    _assert_archive_exact(cluster.store(), windows)


def _pid(replica: ServiceProcess) -> int:
    assert replica.process is not None
    return replica.process.pid


def _lease_holders(engine: Engine) -> dict[int, str]:
    """Window id → the pid of the replica holding its processing lease."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(window_rows.c.id, window_rows.c.lease_owner).where(
                window_rows.c.state == "received",
                window_rows.c.lease_owner.is_not(None),
                window_rows.c.lease_until > datetime.now(UTC),
            )
        ).all()
    # Owners are named {host}-{pid}-{random}.
    return {row.id: row.lease_owner.rsplit("-", 2)[1] for row in rows}


def test_a_replica_killed_mid_window_loses_it_to_the_other_after_its_lease(
    fresh_postgres_url: str,
    s3_bucket: str,
    s3_endpoint: str,
    balancer: tuple[Balancer, str],
    tmp_path: Path,
) -> None:
    front, front_url = balancer
    windows = recent_hours(4)
    files = SlowFiles(stall=1.5)
    with (
        serve_in_thread(files.app()) as files_url,
        serve_in_thread(
            create_simulator(loopback_simulator(SEED, PER_DAY, public_url=files_url))
        ) as sim_url,
    ):
        files.target = sim_url
        env = _cluster_env(
            sim_url,
            front_url,
            fresh_postgres_url,
            s3_bucket,
            s3_endpoint,
            windows,
            ARCHIVER_LEASE="3s",
        )
        cluster = Cluster(sim_url, env, tmp_path)
        front.replicas = [replica.url for replica in cluster.replicas]
        cluster.start()
        try:
            with Ledger.open(fresh_postgres_url) as ledger:
                engine = create_engine(fresh_postgres_url)
                deadline = time.monotonic() + 30
                # Every window requested, and a replica in the middle of one.
                while not (
                    (holders := _lease_holders(engine)) and 0 not in cluster.requests(windows)
                ):
                    assert time.monotonic() < deadline, ledger.windows(STREAM)
                    time.sleep(0.05)
                engine.dispose()
                window_id, pid = next(iter(holders.items()))
                [victim] = [r for r in cluster.replicas if str(_pid(r)) == pid]
                [survivor] = [r for r in cluster.replicas if r is not victim]
                victim.kill()
                killed_at = datetime.now(UTC)
                records = wait_for_states(ledger, len(windows), timeout=60)
            requests = cluster.requests(windows)
        finally:
            cluster.stop()

    assert requests == [1] * len(windows)
    assert [record.attempts for record in records] == [1] * len(windows)
    [taken] = [record for record in records if record.id == window_id]
    assert taken.committed_at is not None and taken.committed_at > killed_at
    committed_by_survivor = {str(e["window"]) for e in cluster.events(survivor, "window_committed")}
    assert str(taken.window) in committed_by_survivor
    _assert_archive_exact(cluster.store(), windows)
