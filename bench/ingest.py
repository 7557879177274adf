"""Ingest benchmark: one window of N messages, delivered as a gzip NDJSON link, to Parquet.

Three contenders read the same file (the simulator's export, made once) and write to the same
S3 endpoint (moto's server on loopback, one bucket each):

- floor: `pyarrow.json.read_json` + `pyarrow.parquet.write_table` (zstd) + one `put_object`,
  in a subprocess; the least any tool can do with this data;
- archiver: `chat-archiver serve` in a subprocess, sent the link callback; timed from the
  callback's arrival (received_at) to the window's committed_at in the ledger, so it includes
  storing the raw callback, the download, decoding, normalising, deduplicating, writing,
  uploading, the manifest and the ledger commit;
- dlt: the same records loaded by dlt into Parquet on its filesystem destination, in a
  subprocess, timed around `pipeline.run`.

With `--format iceberg`, a fourth contender, archiver-iceberg, is the same service with
ARCHIVER_TABLE_FORMAT=iceberg (SQL catalog in its SQLite ledger), timed the same way up to the
snapshot's commit; its target is at most 1.2x the plain layout's time.

Peak RSS is each process's VmHWM. Targets: archiver within 1.5x of the floor and at least 5x
faster than dlt (checked from 100000 messages up; below that, fixed costs dominate), and peak
RSS under 400 MB. Exits 1 naming every target missed.

    python bench/ingest.py                      # 100000 and 1000000 messages
    python bench/ingest.py --quick              # 20000 messages, well under a minute
    python bench/ingest.py --messages 250000 --store file
    python bench/ingest.py --format iceberg --skip-dlt  # plain layout and Iceberg side by side
    python bench/ingest.py --drift              # every file shape, clean and drifting (drift.py)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import (
    S3_ENV,
    ServiceRun,
    create_bucket,
    default_data_dir,
    exit_status,
    export_file,
    link_server,
    peak_rss_mb,
    print_table,
    run_service,
    s3_endpoint,
    warmup_file,
)

FLOOR_RATIO = 1.5
DLT_RATIO = 5.0
RSS_MB = 400.0
RATIOS_FROM = 100_000
DLT_PAGE = 10_000
ICEBERG_RATIO = 1.2


@dataclass(frozen=True)
class Result:
    contender: str
    rows: int
    seconds: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Target:
    store: str  # "s3" or "file"
    root: str  # the bucket, or the directory
    endpoint: str | None = None

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Target:
        return cls(**json.loads(text))


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.drift:
        import drift

        sizes = [20_000] if args.quick else args.messages or list(drift.SIZES)
        repeat = 1 if args.quick else args.repeat
        return drift.run(sizes, repeat, args.data_dir, args.work_dir, args.skip_dlt, args.shapes)
    sizes = [20_000] if args.quick else args.messages or [100_000, 1_000_000]
    if args.quick:
        args.repeat = 1
    data_dir: Path = args.data_dir
    files = {size: export_file(data_dir, size) for size in sizes}
    warm = warmup_file(data_dir)
    results: dict[int, list[Result]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-ingest-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        with _stores(args.store, work) as make_target, link_server(data_dir) as links:
            for size in sizes:
                path = files[size]
                runs: list[Result] = []
                for turn in range(args.repeat):
                    name = f"{size}-{turn}"
                    _progress(size, turn, args.repeat, "floor")
                    target = make_target(f"floor-{name}")
                    runs.append(_child("floor", path, warm, target, work))
                    _progress(size, turn, args.repeat, "archiver")
                    target = make_target(f"archiver-{name}")
                    runs.append(_archiver(path, warm, links, target, work, name))
                    if args.format == "iceberg":
                        _progress(size, turn, args.repeat, "archiver-iceberg")
                        target = make_target(f"iceberg-{name}")
                        runs.append(_archiver(path, warm, links, target, work, name, iceberg=True))
                    if not args.skip_dlt:
                        _progress(size, turn, args.repeat, "dlt")
                        target = make_target(f"dlt-{name}")
                        runs.append(_child("dlt", path, warm, target, work))
                for run in runs:
                    if run.rows != size:
                        raise SystemExit(f"{run.contender} wrote {run.rows} rows, not {size}")
                results[size] = _summary(runs)
    return _report(results, args.store, skip_dlt=args.skip_dlt)


def _progress(size: int, turn: int, repeat: int, contender: str) -> None:
    print(f"{size} messages, run {turn + 1}/{repeat}: {contender} ...", file=sys.stderr)


def _summary(runs: list[Result]) -> list[Result]:
    """Per contender: the median time of its runs and the highest peak RSS."""
    out = []
    for contender in dict.fromkeys(run.contender for run in runs):
        mine = [run for run in runs if run.contender == contender]
        seconds = statistics.median(run.seconds for run in mine)
        peak = max(run.peak_rss_mb for run in mine)
        out.append(Result(contender, mine[0].rows, seconds, peak))
    return out


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--messages",
        type=lambda text: [int(n) for n in text.split(",")],
        default=None,
        help="comma-separated window sizes (default 100000,1000000; 200000,1000000 with --drift)",
    )
    parser.add_argument(
        "--shapes", help="with --drift: only the payloads whose name contains this text"
    )
    parser.add_argument(
        "--drift",
        action="store_true",
        help="every file shape, clean and with unknown fields, decoded and written in-process "
        "against the pyarrow floor (see bench/drift.py)",
    )
    parser.add_argument("--quick", action="store_true", help="one run of 20000 messages")
    parser.add_argument(
        "--store",
        choices=("s3", "file"),
        default="s3",
        help="s3: moto's server on loopback (default); file: a local directory",
    )
    parser.add_argument("--skip-dlt", action="store_true", help="leave dlt out")
    parser.add_argument(
        "--format",
        choices=("parquet", "iceberg"),
        default="parquet",
        help="iceberg: also run the service with ARCHIVER_TABLE_FORMAT=iceberg",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="runs per contender and size; the table shows the median time (default 3)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where the export files are generated once and kept (default %(default)s)",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch space (default: system temp)")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for a commit")
    return parser


class _stores:
    """Hands out one empty bucket (or directory) per contender and run."""

    def __init__(self, kind: str, work: Path) -> None:
        self.kind = kind
        self.work = work
        self.endpoint: str | None = None
        self._s3: Any = None

    def __enter__(self) -> _stores:
        if self.kind == "s3":
            self._s3 = s3_endpoint()
            self.endpoint = self._s3.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._s3 is not None:
            self._s3.__exit__(*exc)

    def __call__(self, name: str) -> Target:
        if self.kind == "s3":
            assert self.endpoint is not None
            create_bucket(self.endpoint, name)
            return Target("s3", name, self.endpoint)
        root = self.work / "stores" / name
        root.mkdir(parents=True)
        return Target("file", str(root))


def _archiver(
    path: Path,
    warm: Path,
    links: str,
    target: Target,
    work: Path,
    name: str,
    iceberg: bool = False,
) -> Result:
    if target.store == "s3":
        storage_url, endpoint = f"s3://{target.root}/lake", target.endpoint
    else:
        storage_url, endpoint = f"file://{target.root}", None
    run: ServiceRun = run_service(
        link=f"{links}/{path.name}",
        warmup_link=f"{links}/{warm.name}",
        storage_url=storage_url,
        s3_endpoint_url=endpoint,
        work_dir=work / f"serve-{'iceberg-' if iceberg else ''}{name}",
        timeout=1800,
        extra_env={"ARCHIVER_TABLE_FORMAT": "iceberg"} if iceberg else None,
    )
    contender = "archiver-iceberg" if iceberg else "archiver"
    return Result(contender, run.rows, run.seconds, run.peak_rss_mb)


def _child(kind: str, path: Path, warm: Path, target: Target, work: Path) -> Result:
    """Runs the floor or dlt in a fresh interpreter, so its memory is its own; like the
    service, each first does the small warm-up export, untimed."""
    scratch = work / f"{kind}-{target.root.rsplit('/', 1)[-1]}"
    scratch.mkdir(parents=True)
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            f"_{kind}",
            str(path),
            str(warm),
            target.to_json(),
            str(scratch),
        ],
        capture_output=True,
        text=True,
        env=os.environ | S3_ENV | {"TMPDIR": str(scratch)},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    shutil.rmtree(scratch, ignore_errors=True)
    return Result(kind, report["rows"], report["seconds"], report["peak_rss_mb"])


def _floor(path: Path, warm: Path, target: Target) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    client = _s3_client(target) if target.store == "s3" else None

    def once(source: Path, key: str) -> int:
        table = pa_json.read_json(source)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression="zstd")
        data = sink.getvalue().to_pybytes()
        if client is not None:
            client.put_object(Bucket=target.root, Key=key, Body=data)
        else:
            (Path(target.root) / key.replace("/", "-")).write_bytes(data)
        return int(table.num_rows)

    once(warm, "warmup/part-0000.parquet")
    started = time.perf_counter()
    rows = once(path, "floor/part-0000.parquet")
    seconds = time.perf_counter() - started
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def _s3_client(target: Target) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=target.endpoint, region_name="us-east-1")


def _dlt(path: Path, warm: Path, target: Target, scratch: Path) -> dict[str, Any]:
    if target.store == "s3":
        os.environ.update(
            {
                "DESTINATION__FILESYSTEM__BUCKET_URL": f"s3://{target.root}/dlt",
                "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_ACCESS_KEY_ID": "testing",
                "DESTINATION__FILESYSTEM__CREDENTIALS__AWS_SECRET_ACCESS_KEY": "testing",
                "DESTINATION__FILESYSTEM__CREDENTIALS__REGION_NAME": "us-east-1",
                "DESTINATION__FILESYSTEM__CREDENTIALS__ENDPOINT_URL": str(target.endpoint),
            }
        )
    else:
        os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = Path(target.root).as_uri()
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DLT_DATA_DIR"] = str(scratch / "data")
    import dlt

    @dlt.resource(name="chat_messages", write_disposition="append")
    def chat_messages(source: Path) -> Any:
        with gzip.open(source, "rb") as lines:
            page: list[dict[str, Any]] = []
            for line in lines:
                page.append(json.loads(line))
                if len(page) == DLT_PAGE:
                    yield page
                    page = []
            if page:
                yield page

    def pipeline_for(name: str) -> Any:
        return dlt.pipeline(
            pipeline_name=name,
            destination="filesystem",
            dataset_name=name,
            pipelines_dir=str(scratch / "pipelines"),
        )

    pipeline_for("warmup").run(chat_messages(warm), loader_file_format="parquet")
    pipeline = pipeline_for("chat")
    started = time.perf_counter()
    pipeline.run(chat_messages(path), loader_file_format="parquet")
    seconds = time.perf_counter() - started
    trace = pipeline.last_trace
    rows = trace.last_normalize_info.row_counts.get("chat_messages", 0)
    return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}


def _report(results: dict[int, list[Result]], store: str, *, skip_dlt: bool) -> int:
    rows = []
    missed: list[str] = []
    checks = []
    for size, runs in results.items():
        by_name = {run.contender: run for run in runs}
        floor, archiver = by_name["floor"], by_name["archiver"]
        for run in runs:
            rows.append(
                [
                    f"{size:,}",
                    run.contender,
                    f"{run.seconds:.2f}",
                    f"{run.rows / run.seconds:,.0f}",
                    f"{run.seconds / floor.seconds:.2f}x",
                    f"{run.peak_rss_mb:.0f}",
                ]
            )
        measured = [("peak RSS < 400 MB", f"{archiver.peak_rss_mb:.0f} MB", RSS_MB, True)]
        if size >= RATIOS_FROM:
            ratio = archiver.seconds / floor.seconds
            measured.append(("archiver / floor <= 1.5", f"{ratio:.2f}", FLOOR_RATIO, False))
            if not skip_dlt:
                speedup = by_name["dlt"].seconds / archiver.seconds
                measured.append(("dlt / archiver >= 5", f"{speedup:.2f}", DLT_RATIO, False))
        if "archiver-iceberg" in by_name and size >= RATIOS_FROM:
            iceberg = by_name["archiver-iceberg"]
            ratio = iceberg.seconds / archiver.seconds
            measured.append(("iceberg / plain <= 1.2", f"{ratio:.2f}", ICEBERG_RATIO, False))
            measured.append(("iceberg RSS < 400 MB", f"{iceberg.peak_rss_mb:.0f} MB", RSS_MB, True))
        for name, shown, limit, is_rss in measured:
            value = float(shown.split()[0])
            at_most = "floor" in name or "plain" in name
            ok = value < limit if is_rss else (value <= limit if at_most else value >= limit)
            checks.append([f"{size:,}", name, shown, "ok" if ok else "MISSED"])
            if not ok:
                missed.append(f"{size} messages: {name} (measured {shown})")
    print(f"store: {'moto S3 server on loopback' if store == 's3' else 'local directory'}")
    print_table(["messages", "contender", "seconds", "rows/s", "vs floor", "peak RSS MB"], rows)
    print()
    print_table(["messages", "target", "measured", "result"], checks)
    return exit_status(missed)


def _child_main(argv: list[str]) -> int:
    kind, path, warm, target_json, scratch = argv
    target = Target.from_json(target_json)
    if kind == "_floor":
        report = _floor(Path(path), Path(warm), target)
    else:
        report = _dlt(Path(path), Path(warm), target, Path(scratch))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("_floor", "_dlt"):
        sys.exit(_child_main(sys.argv[1:]))
    sys.exit(main())
