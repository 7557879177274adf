"""Checks the archive against its manifests: what `chat-archiver verify` reports.

Each part a manifest lists must exist with the recorded size and SHA-256, hold the recorded
number of rows (from the Parquet footer) and have the archive's schema. Objects under the
stream that no manifest lists are reported too: table readers would count their rows.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from storage.layout import manifest_prefix, window_from_name, window_of_part
from storage.manifest import Manifest, ManifestError, PartInfo, load, manifest_keys
from storage.objectstore import ObjectNotFound, ObjectStore
from storage.schema import MESSAGE_SCHEMA, STREAM

KINDS = ("missing", "size", "checksum", "rows", "schema", "unlisted", "manifest")


@dataclass(frozen=True)
class Problem:
    key: str
    kind: str
    """One of KINDS."""
    detail: str


def verify_archive(
    store: ObjectStore, since: datetime | None = None, stream: str = STREAM
) -> Iterator[Problem]:
    """Yields every problem found; none means the archive matches its manifests.

    With `since`, only windows that end after it are checked, and only their parts (and
    parts of windows with no manifest ending after it) count as unlisted.
    """
    listed: set[str] = set()
    yield from _stray_manifest_names(store, stream)
    with tempfile.TemporaryDirectory(prefix="chat-archiver-verify-") as tmp:
        scratch = Path(tmp) / "part.parquet"
        for key, window in manifest_keys(store, stream, since):
            try:
                manifest = load(key, store.get_bytes(key))
            except (ManifestError, ObjectNotFound) as exc:
                yield Problem(key, "manifest", str(exc))
                continue
            listed.update(part.key for part in manifest.parts)
            if manifest.window != window or manifest.stream != stream:
                yield Problem(
                    key,
                    "manifest",
                    f"describes {manifest.stream} window {manifest.window}, "
                    f"but is stored as {stream} window {window}",
                )
            yield from _check_manifest(store, key, manifest)
            for part in manifest.parts:
                yield from _check_part(store, part, scratch)
    for info in store.list(f"{stream}/"):
        if info.key in listed:
            continue
        written_for = window_of_part(info.key)
        if since is not None and written_for is not None and written_for.end <= since:
            continue
        yield Problem(info.key, "unlisted", "no manifest lists this object; readers will see it")


def _stray_manifest_names(store: ObjectStore, stream: str) -> Iterator[Problem]:
    prefix = manifest_prefix(stream)
    for info in store.list(prefix):
        name = info.key.removeprefix(prefix).removesuffix(".json")
        try:
            window_from_name(name)
        except ValueError:
            yield Problem(info.key, "manifest", "name is not {start}-{end}.json; not read")


def _check_manifest(store: ObjectStore, key: str, manifest: Manifest) -> Iterator[Problem]:
    total = sum(part.rows for part in manifest.parts)
    if total != manifest.rows:
        yield Problem(key, "rows", f"manifest says {manifest.rows} rows, its parts {total}")
    if manifest.rejects and manifest.rejects_key and store.size(manifest.rejects_key) is None:
        yield Problem(manifest.rejects_key, "missing", f"listed by {key}, not found")


def _check_part(store: ObjectStore, part: PartInfo, scratch: Path) -> Iterator[Problem]:
    size = store.size(part.key)
    if size is None:
        yield Problem(part.key, "missing", "listed by its manifest, not found")
        return
    if size != part.bytes:
        yield Problem(part.key, "size", f"{size} bytes, manifest says {part.bytes}")
        return
    try:
        store.download_file(part.key, scratch)
        with scratch.open("rb") as source:
            digest = hashlib.file_digest(source, "sha256").hexdigest()
        if digest != part.sha256:
            yield Problem(part.key, "checksum", f"sha256 {digest}, manifest says {part.sha256}")
            return
        try:
            parquet = pq.ParquetFile(scratch)
            rows = parquet.metadata.num_rows
            schema = parquet.schema_arrow
            parquet.close()
        except (pa.ArrowException, OSError) as exc:
            yield Problem(part.key, "schema", f"not a readable Parquet file: {exc}")
            return
        if rows != part.rows:
            yield Problem(part.key, "rows", f"{rows} rows in the file, manifest says {part.rows}")
        if not schema.equals(MESSAGE_SCHEMA, check_metadata=False):
            yield Problem(part.key, "schema", schema_difference(schema))
    except ObjectNotFound:
        yield Problem(part.key, "missing", "disappeared while being verified")
    finally:
        scratch.unlink(missing_ok=True)


def schema_difference(schema: pa.Schema) -> str:
    """What sets `schema` apart from MESSAGE_SCHEMA, in one line."""
    expected = {field.name: field for field in MESSAGE_SCHEMA}
    found = {field.name: field for field in schema}
    notes = [f"missing column {name}" for name in expected if name not in found]
    notes += [f"unexpected column {name}" for name in found if name not in expected]
    for name, field in found.items():
        want = expected.get(name)
        if want is None:
            continue
        if field.type != want.type:
            notes.append(f"{name} is {field.type}, expected {want.type}")
        elif field.nullable != want.nullable:
            notes.append(f"{name} nullable={field.nullable}, expected {want.nullable}")
    if not notes and schema.names != MESSAGE_SCHEMA.names:
        notes.append("columns are in a different order")
    return "; ".join(notes) or "schema differs"
