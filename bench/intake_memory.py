"""Intake memory benchmark: a 1 GB NDJSON export through the real service, in bounded memory.

The export (the simulator's messages for one day, as many as make about --gigabytes of NDJSON)
is made once in the data directory, served as a download link, and sent to `chat-archiver
serve` (a subprocess) as a link callback: the way a large export arrives, since callbacks
themselves are capped at 64 MB. Prints rows, seconds (callback arrival to commit), MB/s of
NDJSON and the serve process's peak RSS (VmHWM), which must stay under 400 MB; exits 1 if not.

    python bench/intake_memory.py                  # about 1 GB
    python bench/intake_memory.py --quick          # about 50 MB, well under a minute
    python bench/intake_memory.py --gzip --store file
    python bench/intake_memory.py --export drift-7-20250303-1000000-nested.ndjson   # any file
    python bench/intake_memory.py --windows 50     # 50 windows in one process: memory creep

With --windows, the files of `--window-files` (by default the drift benchmark's 200,000-message
files of five shapes, made if missing) are sent in turn, one window each, to one `serve`
process; the RSS after each commit must not climb. The files come in cycles (one window of
each), and the RSS after a window depends on its shape, so cycles are compared: the mean RSS
after the windows of the last cycle may exceed that of the second cycle (the first warms up:
imports, caches, pools) by at most 20 MB. The table of means per cycle shows the trend.
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
    exit_status,
    link_server,
    print_table,
    run_service,
    s3_endpoint,
    warmup_file,
)

from simulator.corpus import MessageCorpus
from simulator.files import write_export

RSS_MB = 400.0
CREEP_MB = 20.0
SAMPLE = 20_000
CREEP_SHAPES = (
    "NDJSON, no unknown field",
    "NDJSON, 10% unknown scalar",
    "NDJSON, every record an unknown object",
    "JSON array, 10% unknown",
    "CSV, one extra column",
)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.windows:
        return _creep(args)
    target = int((0.05 if args.quick else args.gigabytes) * 1024 * MB)
    if args.export:
        path = args.data_dir / args.export
    else:
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
    parser.add_argument("--export", help="a file of the data directory to send instead")
    parser.add_argument(
        "--windows", type=int, default=0, help="send this many windows to one process"
    )
    parser.add_argument(
        "--window-files",
        type=lambda text: text.split(","),
        help="comma-separated files of the data directory for --windows (sent in turn)",
    )
    parser.add_argument(
        "--window-messages",
        type=int,
        default=200_000,
        help="messages per window of the default --windows files (default 200000)",
    )
    return parser


def _creep(args: argparse.Namespace) -> int:
    from windows import run_windows

    names = args.window_files or _creep_files(args.data_dir, args.window_messages)
    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.work_dir)))
        if args.store == "s3":
            endpoint = stack.enter_context(s3_endpoint())
            create_bucket(endpoint, "creep")
            storage_url, endpoint_url = "s3://creep/lake", endpoint
        else:
            storage_url, endpoint_url = f"file://{work}/archive", None
        links = stack.enter_context(link_server(args.data_dir))
        files = [names[n % len(names)] for n in range(args.windows)]
        runs = run_windows(
            [f"{links}/{name}" for name in files],
            storage_url=storage_url,
            s3_endpoint_url=endpoint_url,
            work_dir=work / "serve",
            timeout=args.timeout,
        )
    rows = [
        [
            str(number + 1),
            name,
            f"{run.rows:,}",
            f"{run.seconds:.1f}",
            f"{run.rss_mb:.0f}",
            f"{run.peak_rss_mb:.0f}",
        ]
        for number, (name, run) in enumerate(zip(files, runs, strict=True))
    ]
    print(f"store: {'moto S3 server on loopback' if args.store == 's3' else 'local directory'}")
    print_table(["window", "file", "rows", "seconds", "RSS after MB", "peak RSS MB"], rows)
    peak = max(run.peak_rss_mb for run in runs)
    cycle = len(names)
    means = _cycle_means([run.rss_mb for run in runs], cycle)
    print()
    print_table(
        ["windows", "mean RSS after MB"],
        [[f"{n * cycle + 1}-{(n + 1) * cycle}", f"{mean:.0f}"] for n, mean in enumerate(means)],
    )
    print(f"peak {peak:.0f} MB")
    missed = []
    if peak >= RSS_MB:
        missed.append(f"peak RSS {peak:.0f} MB is not under {RSS_MB:.0f} MB")
    if len(means) < 3:
        print(f"creep not judged: it needs three cycles of {cycle} windows", file=sys.stderr)
    elif means[-1] - means[1] > CREEP_MB:
        missed.append(
            f"RSS crept {means[-1] - means[1]:.0f} MB from the second cycle to the last "
            f"({means[1]:.0f} -> {means[-1]:.0f} MB)"
        )
    return exit_status(missed)


def _cycle_means(rss: list[float], cycle: int) -> list[float]:
    """The mean of each whole cycle of `cycle` windows, in order."""
    whole = len(rss) // cycle
    return [sum(rss[n * cycle : (n + 1) * cycle]) / cycle for n in range(whole)]


def _creep_files(data_dir: Path, messages: int) -> list[str]:
    import drift

    shapes = {shape.name: shape for shape in drift.SHAPES}
    return [
        drift._files(data_dir, shapes[name], messages, WINDOW.start)[0].name
        for name in CREEP_SHAPES
    ]


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
