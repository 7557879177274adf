"""The export file a link notice points at: from `_raw/` if it was kept, else downloaded and kept.

Links are short-lived, so the first download is stored beside the callback body, as
`_raw/{export_id}/{received_at}-{callback_id}.download`, before it is decoded, with its size and
SHA-256 in the callback's raw metadata. Processing the window again (a retry after a crash, a
`replay`) reads that copy and never needs the link.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from receiver.decoding import DecodeError, DownloadError, DownloadPolicy, LinkNotice, classify
from receiver.decoding.download import download_with_digest
from receiver.spool import ensure_room
from storage.errors import PermanentError
from storage.layout import raw_download_key, raw_meta_key
from storage.objectstore import ObjectStore, StoreError

log = logging.getLogger("chat_archiver.receiver.export_file")

_HASH_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ExportFile:
    path: Path
    size: int
    sha256: str
    downloaded: bool  # False: read from the kept copy in _raw/


class SourceMissing(PermanentError):
    """What a window would be rebuilt from is not in `_raw/`, and cannot be fetched now."""


def fetch_export_file(
    store: ObjectStore, body_key: str, url: str, dest: Path, policy: DownloadPolicy
) -> ExportFile:
    """The linked file at `dest`: the kept copy if there is a sound one, else downloaded (and
    then kept before it is returned). Raises what `download` raises (DownloadError and its
    kinds, SpoolFull) when it has to download and cannot."""
    key = raw_download_key(body_key)
    meta = _meta(store, body_key)
    kept = _kept_copy(store, key, meta, dest)
    if kept is not None:
        return kept
    size, sha256 = download_with_digest(url, dest, policy)
    store.put_file(key, dest)
    _record(store, body_key, meta, key, size, sha256)
    log.info("export_file_kept", extra={"key": key, "bytes": size})
    return ExportFile(dest, size, sha256, downloaded=True)


def ensure_source(store: ObjectStore, body_key: str, policy: DownloadPolicy, work: Path) -> bool:
    """Makes sure the window can be rebuilt from `_raw/` alone; True if it had to download.

    The callback body must be stored; if it is a link notice and its file was not kept yet
    (a callback from before files were kept), the file is downloaded and kept now. Raises
    SourceMissing, in one line, when either is impossible.
    """
    if store.size(body_key) is None:
        raise SourceMissing(f"the callback body {body_key} is not in the archive")
    if store.size(raw_download_key(body_key)) is not None:
        return False
    body = work / "body"
    store.download_file(body_key, body)
    try:
        payload = classify(_meta(store, body_key).get("headers", {}), body)
    except DecodeError:
        return False  # not a link: the body itself is the source
    if not isinstance(payload, LinkNotice):
        return False
    try:
        fetch_export_file(store, body_key, payload.url, work / "download", policy)
    except DownloadError as error:
        raise SourceMissing(
            f"the export file of {body_key} was not kept and its link cannot be downloaded "
            f"({error})"
        ) from None
    finally:
        (work / "download").unlink(missing_ok=True)
        body.unlink(missing_ok=True)
    return True


def _meta(store: ObjectStore, body_key: str) -> dict[str, Any]:
    meta = json.loads(store.get_bytes(raw_meta_key(body_key)))
    if not isinstance(meta, dict):
        raise StoreError(f"{raw_meta_key(body_key)} is not a JSON object")
    return meta


def _kept_copy(store: ObjectStore, key: str, meta: dict[str, Any], dest: Path) -> ExportFile | None:
    size = store.size(key)
    if size is None:
        return None
    ensure_room(dest.parent, size, "the kept export file")
    store.download_file(key, dest)
    sha256 = _sha256(dest)
    recorded = meta.get("download")
    if isinstance(recorded, dict) and (recorded.get("sha256"), recorded.get("bytes")) != (
        sha256,
        size,
    ):
        log.error(
            "kept_export_file_damaged",
            extra={"key": key, "bytes": size, "expected_bytes": recorded.get("bytes")},
        )
        dest.unlink(missing_ok=True)
        return None
    return ExportFile(dest, size, sha256, downloaded=False)


def _record(
    store: ObjectStore, body_key: str, meta: dict[str, Any], key: str, size: int, sha256: str
) -> None:
    """The checksum beside the headers. A crash before this leaves a kept file whose metadata
    lacks it; that file is complete (stores write objects whole) and is used as it is."""
    meta["download"] = {
        "key": key,
        "bytes": size,
        "sha256": sha256,
        "downloaded_at": datetime.now(UTC).isoformat(),
    }
    store.put_bytes(raw_meta_key(body_key), json.dumps(meta, indent=1).encode())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while chunk := source.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
