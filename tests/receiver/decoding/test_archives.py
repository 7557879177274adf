"""gzip and zip: corrupt archives and decompression bombs are decode errors."""

from __future__ import annotations

import gzip
import io
import zipfile
import zlib
from pathlib import Path

import pytest

from receiver.decoding import DecodeError
from receiver.decoding.archives import RATIO_FLOOR
from tests.receiver.decoding.shapes import decoded, gzipped, ndjson, zipped

MESSAGES = [{"id": f"m{i}", "chatId": "c", "content": "x" * 50} for i in range(200)]


def read(tmp_path: Path, data: bytes) -> list[dict[str, object]]:
    path = tmp_path / "export"
    path.write_bytes(data)
    return decoded(path)


def zeros_gzip(size: int) -> bytes:
    """`size` bytes of whitespace (valid, empty JSON), gzip-compressed without holding them."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b" " * (1024 * 1024)
    parts = [compressor.compress(chunk) for _ in range(size // len(chunk))]
    return b"".join([*parts, compressor.flush()])


def test_concatenated_gzip_members_are_one_stream(tmp_path: Path) -> None:
    data = ndjson(MESSAGES)
    halves = gzip.compress(data[:5000]) + gzip.compress(data[5000:])

    assert len(read(tmp_path, halves)) == 200


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda data: data[: len(data) // 2], "corrupt or truncated"),
        (lambda data: data[:-8] + b"\x00" * 8, "corrupt or truncated"),
        (lambda data: data + b"trailing garbage", "corrupt or truncated"),
        (lambda data: data[:10] + bytes(b ^ 0x55 for b in data[10:40]) + data[40:], "corrupt"),
    ],
)
def test_damaged_gzip_is_a_decode_error(tmp_path: Path, mangle: object, reason: str) -> None:
    data = gzipped(ndjson(MESSAGES))

    with pytest.raises(DecodeError, match=reason):
        read(tmp_path, mangle(data))  # type: ignore[operator]


def test_a_damaged_zip_is_a_decode_error(tmp_path: Path) -> None:
    data = zipped(ndjson(MESSAGES))

    with pytest.raises(DecodeError, match="zip"):
        read(tmp_path, data[: len(data) - 30])


def test_a_zip_member_with_a_bad_checksum_is_a_decode_error(tmp_path: Path) -> None:
    data = bytearray(zipped(ndjson(MESSAGES)))
    crc_offset = 14  # the local header's CRC-32
    data[crc_offset] ^= 0xFF
    out = io.BytesIO(bytes(data))
    with zipfile.ZipFile(out) as archive:
        info = archive.infolist()[0]
    assert info.CRC is not None

    with pytest.raises(DecodeError, match="zip member"):
        read(tmp_path, bytes(data).replace(info.CRC.to_bytes(4, "little"), b"\x00\x00\x00\x00"))


def test_a_gzip_bomb_stops_at_the_expansion_cap(tmp_path: Path) -> None:
    bomb = zeros_gzip(RATIO_FLOOR + 4 * 1024 * 1024)

    with pytest.raises(DecodeError, match="likely decompression bomb"):
        read(tmp_path, bomb)


def test_a_zip_declaring_too_much_is_refused_before_inflating(tmp_path: Path) -> None:
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive,
        archive.open("huge.ndjson", "w", force_zip64=True) as member,
    ):
        chunk = b" " * (1024 * 1024)
        for _ in range(RATIO_FLOOR // len(chunk) + 2):
            member.write(chunk)

    with pytest.raises(DecodeError, match="likely decompression bomb"):
        read(tmp_path, out.getvalue())


def test_a_zip_member_without_a_name_is_a_decode_error(tmp_path: Path) -> None:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo(""), ndjson(MESSAGES))

    with pytest.raises(DecodeError, match="a member has no name"):
        read(tmp_path, out.getvalue())
