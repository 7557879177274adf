"""Export files: written from a message stream to disk, served behind short-lived links.

Files are written to disk, never built in memory, so a six-month export at a million messages
a day costs disk, not RAM.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

FIELDS = (
    "id",
    "chatId",
    "chatThreadId",
    "content",
    "rawContent",
    "externalId",
    "role",
    "senderId",
    "createdAt",
    "updatedAt",
)

# CSV header labels per requested language, in FIELDS order.
CSV_LABELS: dict[str, tuple[str, ...]] = {
    "enUs": (
        "ID",
        "Chat ID",
        "Chat thread ID",
        "Content",
        "Raw content",
        "External ID",
        "Role",
        "Sender ID",
        "Created at",
        "Updated at",
    ),
    "esEs": (
        "ID",
        "ID del chat",
        "ID del hilo",
        "Contenido",
        "Contenido original",
        "ID externo",
        "Rol",
        "ID del remitente",
        "Creado el",
        "Actualizado el",
    ),
    "ptBr": (
        "ID",
        "ID do chat",
        "ID da thread",
        "Conteúdo",
        "Conteúdo original",
        "ID externo",
        "Papel",
        "ID do remetente",
        "Criado em",
        "Atualizado em",
    ),
}

# shape -> (file name suffix, content type); the inline shapes' files are callback bodies.
SHAPE_FILES: dict[str, tuple[str, str]] = {
    "link-ndjson-gz": (".ndjson.gz", "application/gzip"),
    "link-json": (".json", "application/json"),
    "link-csv": (".csv", "text/csv; charset=utf-8"),
    "link-zip-ndjson": (".zip", "application/zip"),
    "inline-json": (".json", "application/json"),
    "inline-ndjson": (".ndjson", "application/x-ndjson"),
}

_BATCH = 2000
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class _Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class LinkGone(Exception):
    """The link existed but has expired."""


def write_export(
    path: Path,
    messages: Iterable[dict[str, Any]],
    shape: str,
    language: str = "enUs",
    csv_header: str = "labels",
) -> int:
    """Writes `messages` to `path` in the file format of `shape`; returns how many."""
    if shape == "link-ndjson-gz":
        with gzip.open(path, "wb", compresslevel=3) as out:
            return _write_ndjson(out, messages)
    if shape == "link-zip-ndjson":
        with (
            zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive,
            archive.open("chat-messages.ndjson", "w", force_zip64=True) as out,
        ):
            return _write_ndjson(out, messages)
    if shape == "inline-ndjson":
        with path.open("wb") as out:
            return _write_ndjson(out, messages)
    if shape == "link-csv":
        header = CSV_LABELS[language] if csv_header == "labels" else FIELDS
        with path.open("w", encoding="utf-8", newline="") as text:
            return _write_csv(text, messages, header)
    if shape == "link-json":
        with path.open("wb") as out:
            return _write_json_array(out, messages, b"[", b"]")
    if shape == "inline-json":
        with path.open("wb") as out:
            return _write_json_array(out, messages, b'{"status":"completed","data":[', b"]}")
    raise ValueError(f"unknown callback shape {shape!r}")


def _write_ndjson(out: _Writable, messages: Iterable[dict[str, Any]]) -> int:
    count = 0
    lines: list[str] = []
    for message in messages:
        lines.append(_ENCODER.encode(message))
        count += 1
        if len(lines) >= _BATCH:
            out.write(("\n".join(lines) + "\n").encode())
            lines.clear()
    if lines:
        out.write(("\n".join(lines) + "\n").encode())
    return count


def _write_json_array(
    out: _Writable, messages: Iterable[dict[str, Any]], opening: bytes, closing: bytes
) -> int:
    out.write(opening)
    count = 0
    separator = "\n"
    lines: list[str] = []
    for message in messages:
        lines.append(_ENCODER.encode(message))
        count += 1
        if len(lines) >= _BATCH:
            out.write((separator + ",\n".join(lines)).encode())
            separator = ",\n"
            lines.clear()
    if lines:
        out.write((separator + ",\n".join(lines)).encode())
    out.write(b"\n" + closing)
    return count


def _write_csv(text: io.TextIOBase, messages: Iterable[dict[str, Any]], header: Any) -> int:
    writer = csv.writer(text)
    writer.writerow(header)
    count = 0
    for message in messages:
        writer.writerow([message.get(field) for field in FIELDS])
        count += 1
    return count


@dataclass(frozen=True)
class StoredFile:
    name: str
    path: Path
    content_type: str
    created: float


class FileStore:
    """Prepared export files under one directory, each reachable by name until it expires."""

    def __init__(self, ttl: float, directory: str | None = None) -> None:
        self.ttl = ttl
        self._owned = directory is None
        self.directory = Path(directory or tempfile.mkdtemp(prefix="chat-simulator-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._files: dict[str, StoredFile] = {}
        self._purged: set[str] = set()
        self._lock = threading.Lock()

    def new_path(self, shape: str) -> tuple[str, Path]:
        """A fresh, unguessable file name for `shape` and where to write it."""
        name = uuid.uuid4().hex + SHAPE_FILES[shape][0]
        return name, self.directory / name

    def publish(self, name: str, shape: str) -> None:
        """Makes a written file downloadable; the link's lifetime starts now."""
        self.purge_expired()
        stored = StoredFile(name, self.directory / name, SHAPE_FILES[shape][1], time.monotonic())
        with self._lock:
            self._files[name] = stored

    def get(
        self, name: str, force_expired: bool = False, ttl: float | None = None
    ) -> StoredFile | None:
        """The file behind a link; None if there never was one; LinkGone once it expired
        (after `ttl` seconds, default the store's own)."""
        with self._lock:
            stored = self._files.get(name)
        if stored is None:
            return None
        lifetime = self.ttl if ttl is None else ttl
        if force_expired or time.monotonic() - stored.created > lifetime:
            raise LinkGone(name)
        return stored

    def purge_expired(self) -> None:
        """Deletes expired files from disk; their names stay known so old links answer 410."""
        now = time.monotonic()
        with self._lock:
            expired = [
                stored
                for stored in self._files.values()
                if now - stored.created > self.ttl and stored.name not in self._purged
            ]
            self._purged.update(stored.name for stored in expired)
        for stored in expired:
            stored.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Removes the files; the directory too when the store created it."""
        if self._owned:
            shutil.rmtree(self.directory, ignore_errors=True)
        else:
            for stored in self._files.values():
                stored.path.unlink(missing_ok=True)
