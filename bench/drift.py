"""Schema drift benchmark (`bench/ingest.py --drift`): the same window of messages in every file
shape the decoders take, clean and with fields the API does not have, decoded and written as
the worker does (`read_batches` -> `write_window` to a local store), against the floor.

- floor: `pyarrow.json.read_json` (NDJSON of the same records, unknown fields and all) or
  `pyarrow.csv.read_csv` (the same CSV), then `pyarrow.parquet.write_table` (zstd) to a file;
- archiver: `write_window(LocalStore, ...)` over `read_batches(file)`: decoding, normalising
  (`extra` included), deduplicating, Parquet, the manifest;
- dlt (NDJSON shapes, when the bench extra is installed): the records into Parquet files.

The machine may be shared: the CPU time each spent (user and system, all threads) is shown
beside the wall-clock ratio, as a check on a ratio that load elsewhere moved.

Each contender runs in a fresh interpreter, first on a small file of the same shape (untimed),
and the runs of one shape are interleaved; the ratio is paired per run (archiver over the
floor of the same round), and the table shows the median and range of those ratios.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import SEED, WARMUP_WINDOW, WINDOW, exit_status, peak_rss_mb, print_table

from simulator.corpus import MessageCorpus
from simulator.files import CSV_LABELS, FIELDS

FLOOR_RATIO = 1.3
SIZES = (200_000, 1_000_000)
WARMUP_MESSAGES = 2000
Record = dict[str, Any]


@dataclass(frozen=True)
class Shape:
    name: str
    layout: str  # ndjson, array (one element per line), compact (on one line), wrapped or csv
    drift: Callable[[int, Record], Record]


def _clean(index: int, record: Record) -> Record:
    return record


def _one(index: int, record: Record) -> Record:
    return record | {"ticketId": 918273} if index == 17 else record


def _tenth(index: int, record: Record) -> Record:
    return record | {"ticketId": 100_000 + index} if index % 10 == 0 else record


def _every(index: int, record: Record) -> Record:
    return record | {"ticketId": 100_000 + index}


def _nested(index: int, record: Record) -> Record:
    meta = {"channel": "web", "tags": ["vip", f"t{index % 7}"], "score": index % 100 / 8}
    return record | {"meta": meta}


def _no_nulls(index: int, record: Record) -> Record:
    return {key: value for key, value in record.items() if value is not None}


def _csv_extra(index: int, record: Record) -> Record:
    return record | {"Ticket": f"T-{index}"}


SHAPES = (
    Shape("NDJSON, no unknown field", "ndjson", _clean),
    Shape("NDJSON, one record with an unknown field", "ndjson", _one),
    Shape("NDJSON, 10% unknown scalar", "ndjson", _tenth),
    Shape("NDJSON, every record an unknown scalar", "ndjson", _every),
    Shape("NDJSON, every record an unknown object", "ndjson", _nested),
    Shape("NDJSON, null fields omitted", "ndjson", _no_nulls),
    Shape("JSON array, clean", "array", _clean),
    Shape("JSON array, 10% unknown", "array", _tenth),
    Shape("JSON array on one line, clean", "compact", _clean),
    Shape("JSON array on one line, 10% unknown", "compact", _tenth),
    Shape('wrapped {"data": [...]}, clean', "wrapped", _clean),
    Shape('wrapped {"data": [...]}, 10% unknown', "wrapped", _tenth),
    Shape("CSV, clean", "csv", _clean),
    Shape("CSV, one extra column", "csv", _csv_extra),
)


@dataclass(frozen=True)
class Run:
    seconds: float
    rows: int
    peak_rss_mb: float
    cpu_seconds: float
    """User and system time of the process over the timed work (all its threads)."""


def run(
    sizes: list[int],
    repeat: int,
    data_dir: Path,
    work_dir: Path | None,
    skip_dlt: bool,
    only: str | None = None,
) -> int:
    """Runs every shape (whose name contains `only`, if given) at every size; prints the
    table; 1 if a target is missed."""
    dlt = not skip_dlt and _has_dlt()
    if not skip_dlt and not dlt:
        print("dlt is not installed (make bench installs it): its column is left out")
    rows: list[list[str]] = []
    missed: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-drift-", dir=work_dir) as tmp:
        for size in sizes:
            for shape in SHAPES:
                if only is not None and only.lower() not in shape.name.lower():
                    continue
                data, floor_input = _files(data_dir, shape, size, WINDOW.start)
                warm, warm_floor = _files(data_dir, shape, WARMUP_MESSAGES, WARMUP_WINDOW.start)
                floors, archivers, ratios, cpu_ratios = [], [], [], []
                for turn in range(repeat):
                    print(f"{size} {shape.name}: run {turn + 1}/{repeat}", file=sys.stderr)
                    floor = _child("floor", floor_input, warm_floor, Path(tmp), shape.layout)
                    archiver = _child("archiver", data, warm, Path(tmp), shape.layout)
                    if archiver.rows != size:
                        raise SystemExit(f"{shape.name}: archiver wrote {archiver.rows} rows")
                    floors.append(floor)
                    archivers.append(archiver)
                    ratios.append(archiver.seconds / floor.seconds)
                    cpu_ratios.append(archiver.cpu_seconds / floor.cpu_seconds)
                dlt_shown = "-"
                if dlt and shape.layout == "ndjson":
                    done = _child("dlt", floor_input, warm_floor, Path(tmp), shape.layout)
                    dlt_shown = (
                        f"{done.seconds / statistics.median(a.seconds for a in archivers):.1f}x"
                    )
                ratio = statistics.median(ratios)
                ok = ratio <= FLOOR_RATIO
                rows.append(
                    [
                        f"{size:,}",
                        shape.name,
                        f"{statistics.median(f.seconds for f in floors):.2f}",
                        f"{statistics.median(a.seconds for a in archivers):.2f}",
                        f"{ratio:.2f}x",
                        f"{min(ratios):.2f}-{max(ratios):.2f}",
                        f"{statistics.median(cpu_ratios):.2f}x",
                        dlt_shown,
                        f"{max(a.peak_rss_mb for a in archivers):.0f}",
                        "ok" if ok else "MISSED",
                    ]
                )
                if not ok:
                    missed.append(f"{size} messages, {shape.name}: {ratio:.2f}x the floor")
    print(f"drift: median of {repeat} runs each, archiver / floor paired per run")
    header = ["messages", "payload", "floor s", "archiver s", "vs floor", "range", "CPU vs floor"]
    print_table([*header, "dlt / archiver", "peak RSS MB", f"<= {FLOOR_RATIO}x"], rows)
    return exit_status(missed)


def _has_dlt() -> bool:
    done = subprocess.run([sys.executable, "-c", "import dlt"], capture_output=True, check=False)
    return done.returncode == 0


def _files(data_dir: Path, shape: Shape, messages: int, day: datetime) -> tuple[Path, Path]:
    """The shape's file, and the file the floor reads (NDJSON or CSV of the same records)."""
    stem = f"drift-{SEED}-{day:%Y%m%d}-{messages}-{shape.drift.__name__.strip('_')}"
    suffix = {
        "ndjson": ".ndjson",
        "array": "-array.json",
        "compact": "-compact.json",
        "wrapped": "-wrapped.json",
    }
    data = data_dir / (stem + suffix.get(shape.layout, ".csv"))
    floor = data if shape.layout in ("ndjson", "csv") else data_dir / f"{stem}.ndjson"
    for path, layout in (
        (floor, "ndjson" if floor != data else shape.layout),
        (data, shape.layout),
    ):
        if not path.exists():
            data_dir.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(path.name + ".partial")
            _write(partial, layout, _records(shape, messages, day))
            partial.rename(path)
    return data, floor


def _records(shape: Shape, messages: int, day: datetime) -> Iterator[Record]:
    corpus = MessageCorpus(SEED, messages)
    window = WINDOW if day == WINDOW.start else WARMUP_WINDOW
    for index, record in enumerate(corpus.between(window.start, window.end)):
        yield shape.drift(index, record)


def _write(path: Path, layout: str, records: Iterator[Record]) -> None:
    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    with path.open("w", encoding="utf-8", newline="") as out:
        if layout == "csv":
            import csv

            writer = csv.writer(out)
            header: list[str] | None = None
            for record in records:
                if header is None:
                    extra = [key for key in record if key not in FIELDS]
                    header = [*CSV_LABELS["enUs"], *extra]
                    writer.writerow(header)
                cells = [record.get(field) for field in FIELDS]
                writer.writerow(cells + [record.get(key) for key in header[len(FIELDS) :]])
            return
        opening, separator, closing = {
            "ndjson": ("", "\n", "\n"),
            "array": ("[\n", ",\n", "\n]"),
            "compact": ("[", ",", "]"),
            "wrapped": ('{"status":"completed","data":[\n', ",\n", "\n]}"),
        }[layout]
        out.write(opening)
        first = True
        for record in records:
            out.write(("" if first else separator) + encode(record))
            first = False
        out.write(closing)


def _child(kind: str, path: Path, warm: Path, work: Path, layout: str) -> Run:
    scratch = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
    done = subprocess.run(
        [sys.executable, __file__, kind, str(path), str(warm), str(scratch), layout],
        capture_output=True,
        text=True,
        env=os.environ | {"TMPDIR": str(scratch)},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"{kind} failed ({done.returncode}) on {path}:\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    subprocess.run(["rm", "-rf", str(scratch)], check=False)
    return Run(report["seconds"], report["rows"], report["peak_rss_mb"], report["cpu_seconds"])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _floor(path: Path, warm: Path, scratch: Path, layout: str) -> dict[str, Any]:
    import pyarrow.csv as pa_csv
    import pyarrow.json as pa_json
    import pyarrow.parquet as pq

    def once(source: Path, name: str) -> int:
        if layout == "csv":
            parse = pa_csv.ParseOptions(newlines_in_values=True)
            table = pa_csv.read_csv(source, parse_options=parse)
        else:
            table = pa_json.read_json(source)
        pq.write_table(table, scratch / name, compression="zstd")
        return int(table.num_rows)

    once(warm, "warm.parquet")
    started, cpu = time.perf_counter(), _cpu()
    rows = once(path, "floor.parquet")
    return _report(rows, started, cpu)


def _archiver(path: Path, warm: Path, scratch: Path) -> dict[str, Any]:
    from receiver.decoding import read_batches
    from storage.commit import write_window
    from storage.stores.local import LocalStore

    store = LocalStore(scratch / "store")

    def once(source: Path, window: Any) -> int:
        batches = read_batches(source, tmp_dir=scratch)
        result = write_window(store, window, "bench", batches, ingested_at=datetime.now(UTC))
        return result.rows

    once(warm, WARMUP_WINDOW)
    started, cpu = time.perf_counter(), _cpu()
    rows = once(path, WINDOW)
    return _report(rows, started, cpu)


def _dlt(path: Path, warm: Path, scratch: Path) -> dict[str, Any]:
    os.environ["DESTINATION__FILESYSTEM__BUCKET_URL"] = (scratch / "dlt").as_uri()
    os.environ["RUNTIME__LOG_LEVEL"] = "WARNING"
    os.environ["DLT_DATA_DIR"] = str(scratch / "data")
    import dlt

    @dlt.resource(name="chat_messages", write_disposition="append")
    def chat_messages(source: Path) -> Any:
        with source.open("rb") as lines:
            page: list[Record] = []
            for line in lines:
                page.append(json.loads(line))
                if len(page) == 10_000:
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
    started, cpu = time.perf_counter(), _cpu()
    pipeline.run(chat_messages(path), loader_file_format="parquet")
    rows = pipeline.last_trace.last_normalize_info.row_counts.get("chat_messages", 0)
    return _report(rows, started, cpu)


def _report(rows: int, started: float, cpu: float) -> dict[str, Any]:
    return {
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": _cpu() - cpu,
        "peak_rss_mb": peak_rss_mb(),
    }


def _child_main(argv: list[str]) -> int:
    kind, path, warm, scratch, layout = argv
    if kind == "floor":
        report = _floor(Path(path), Path(warm), Path(scratch), layout)
    elif kind == "archiver":
        report = _archiver(Path(path), Path(warm), Path(scratch))
    else:
        report = _dlt(Path(path), Path(warm), Path(scratch))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
