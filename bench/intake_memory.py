"""Intake memory benchmark: a 1 GB NDJSON export through the real service, in bounded memory.

The export (the simulator's messages for one day, as many as make about --gigabytes of NDJSON)
is made once in the data directory, served as a download link, and sent to `chat-archiver
serve` (a subprocess) as a link callback: the way a large export arrives, since callbacks
themselves are capped at 64 MB. Prints rows, seconds (callback arrival to commit), MB/s of
NDJSON and the serve process's peak RSS (VmHWM), which must stay under 400 MB; exits 1 if not.

    python bench/intake_memory.py                  # about 1 GB
    python bench/intake_memory.py --quick          # about 50 MB, well under a minute
    python bench/intake_memory.py --gzip --store file
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

from benchlib import (
    MB,
    SEED,
    WINDOW,
    create_bucket,
    default_data_dir,
    link_server,
    print_table,
    run_service,
    s3_endpoint,
    warmup_file,
)

from simulator.corpus import MessageCorpus
from simulator.files import write_export

RSS_MB = 400.0
SAMPLE = 20_000


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    target = int((0.05 if args.quick else args.gigabytes) * 1024 * MB)
    path = _export(args.data_dir, target, compressed=args.gzip)
    ndjson_bytes = _ndjson_bytes(path)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.work_dir)))
        if args.store == "s3":
            endpoint = stack.enter_context(s3_endpoint())
            create_bucket(endpoint, "intake")
            storage_url, endpoint_url = "s3://intake/lake", endpoint
        else:
            storage_url, endpoint_url = f"file://{work}/archive", None
        warm = warmup_file(args.data_dir)
        links = stack.enter_context(link_server(args.data_dir))
        print(f"processing {path.name} ...", file=sys.stderr)
        run = run_service(
            link=f"{links}/{path.name}",
            warmup_link=f"{links}/{warm.name}",
            storage_url=storage_url,
            s3_endpoint_url=endpoint_url,
            work_dir=work / "serve",
            timeout=args.timeout,
        )
    rate = ndjson_bytes / MB / run.seconds
    print(f"store: {'moto S3 server on loopback' if args.store == 's3' else 'local directory'}")
    print_table(
        ["file", "NDJSON MB", "rows", "seconds", "MB/s", "rows/s", "peak RSS MB"],
        [
            [
                path.name,
                f"{ndjson_bytes / MB:,.0f}",
                f"{run.rows:,}",
                f"{run.seconds:.1f}",
                f"{rate:.1f}",
                f"{run.rows / run.seconds:,.0f}",
                f"{run.peak_rss_mb:.0f}",
            ]
        ],
    )
    if run.peak_rss_mb >= RSS_MB:
        print(
            f"target missed: peak RSS {run.peak_rss_mb:.0f} MB is not under {RSS_MB:.0f} MB",
            file=sys.stderr,
        )
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--gigabytes", type=float, default=1.0, help="NDJSON size to feed (default 1.0)"
    )
    parser.add_argument("--quick", action="store_true", help="about 50 MB instead")
    parser.add_argument("--gzip", action="store_true", help="serve the export gzip-compressed")
    parser.add_argument(
        "--store",
        choices=("s3", "file"),
        default="s3",
        help="s3: moto's server on loopback (default); file: a local directory",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where the export is generated once and kept (default %(default)s)",
    )
    parser.add_argument("--work-dir", type=Path, help="scratch space (default: system temp)")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for the commit"
    )
    return parser


def _export(data_dir: Path, target_bytes: int, *, compressed: bool) -> Path:
    """About `target_bytes` of NDJSON: one day of the corpus at a rate that fills it."""
    per_day = _messages_for(target_bytes)
    shape = "link-ndjson-gz" if compressed else "inline-ndjson"
    suffix = ".ndjson.gz" if compressed else ".ndjson"
    path = data_dir / f"intake-{SEED}-{per_day}{suffix}"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    started = time.perf_counter()
    corpus = MessageCorpus(SEED, per_day)
    write_export(partial, corpus.between(WINDOW.start, WINDOW.end), shape)
    partial.rename(path)
    print(
        f"generated {path} ({per_day} messages) in {time.perf_counter() - started:.0f}s",
        file=sys.stderr,
    )
    return path


def _messages_for(target_bytes: int) -> int:
    """How many messages a day makes about `target_bytes` of NDJSON (from a sample's size)."""
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.ndjson"
        corpus = MessageCorpus(SEED, SAMPLE)
        write_export(sample, corpus.between(WINDOW.start, WINDOW.end), "inline-ndjson")
        per_message = sample.stat().st_size / SAMPLE
    return max(1, round(target_bytes / per_message))


def _ndjson_bytes(path: Path) -> int:
    if path.suffix != ".gz":
        return path.stat().st_size
    total = 0
    with gzip.open(path, "rb") as data:
        while chunk := data.read(16 * MB):
            total += len(chunk)
    return total


if __name__ == "__main__":
    sys.exit(main())
