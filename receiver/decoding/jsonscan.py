"""Finds the records of a JSON file as byte ranges, in bounded memory, without parsing them.

A JSON array of messages, an object wrapping that array, NDJSON, or concatenated objects: the
scanner walks the framing (the outer array, the wrapper's keys, the gaps between lines) itself
and hands the record objects on as NDJSON blocks (one record per line) for pyarrow to parse.
Whole exports never sit in memory and nothing recurses, so nesting depth is checked instead of
blowing the stack.

Speed comes from regular expressions, which run in C: a run of flat records one per line (NDJSON,
or an array written one element per line) is taken in a single match; other records one match
each when flat, and a bracket-counting loop when they nest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import IO

import msgspec
import pyarrow as pa

from receiver.decoding.buffers import complete_utf8, validate_utf8
from receiver.decoding.errors import DecodeError
from receiver.decoding.jsonvalue import show_byte, value_end

# Keys under which an object may hold the array of messages.
WRAPPER_KEYS = frozenset({"data", "messages", "chatMessages", "items", "records"})
# Keys that mark a top-level object as a message rather than a wrapper.
_RECORD_KEYS = frozenset({"id", "chatId"})

MAX_RECORD_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_WS = re.compile(rb"[ \t\r\n]*")
# A string as an "unrolled loop" (no alternation per character): fastest in re.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
# A flat object with no raw line break (valid JSON strings cannot hold one), then runs of them
# one per line: NDJSON lines, or array elements each followed by a comma and a line break.
_FLAT_LINE = rb'\{[^"{}\[\]\r\n]*+(?:"[^"\\\r\n]*+(?:\\[^\r\n][^"\\\r\n]*+)*+"[^"{}\[\]\r\n]*+)*+\}'
# Whitespace around the line breaks is left in place: both parsers downstream skip it.
_NDJSON_RUN = re.compile(rb"(?:" + _FLAT_LINE + rb"[ \t\r]*\n[ \t]*)++")
_ARRAY_RUN = re.compile(rb"(?:" + _FLAT_LINE + rb"[ \t\r]*,\r?\n[ \t]*)++")
# Array elements are framed many at a time by msgspec (in C) where it can: it reads a stretch
# of elements as a JSON array of raw values, which succeeds only when the stretch ends where
# an element does. These many candidate ends are tried before the elements are framed one by
# one for a while.
_ELEMENTS = msgspec.json.Decoder(list[msgspec.Raw])
_BULK_TRIES = 4
# Once the elements are one per line: a line that does not start an object (one regex pass,
# cheaper than counting a two-byte pattern).
_NOT_AN_OBJECT_NEXT = re.compile(rb"\n[^{]")

_LBRACKET, _RBRACKET, _LBRACE, _RBRACE = b"[]{}"
_QUOTE = ord('"')


Block = tuple[bytes, int]


@dataclass(frozen=True)
class InArray:
    """The array of messages a stream's records are elements of: its name in error messages,
    and the key of the object holding it (None for a top-level array)."""

    what: str
    wrapper: str | None


@dataclass(frozen=True)
class Handoff:
    """Where the records start, for a reader that cuts them at line breaks instead of framing
    each one (`receiver.decoding.lines`): the buffered bytes from the first record on, their
    offset in the stream, the UTF-8 validation state, and the array the records are elements
    of (None for NDJSON); the rest is still in the stream."""

    data: bytes
    offset: int
    partial: bytes
    array: InArray | None = None


@dataclass(frozen=True)
class Resume:
    """Where a scanner picks records up again: the stream's offset, the records before it, and
    the array they are elements of (None for NDJSON or objects one after another)."""

    offset: int
    records: int
    array: InArray | None = None


class RecordScanner:
    """Yields the records of one JSON stream as (NDJSON block, number of records) pairs.

    A block is one or more record objects, one per line, joined by single line breaks.

    With `hand_off_lines`, a stream's records (NDJSON, objects one after another, or the
    elements of the array of messages) are not framed past the first one: iteration ends and
    `handoff` says where they start, for `lines.LineBlocks`. With `resume`, the scanner frames
    records from the middle of a stream (the rest of one that `LineBlocks` could not cut), and
    what follows them (the end of the array and of its wrapper).
    """

    def __init__(
        self,
        stream: IO[bytes],
        chunk_bytes: int = CHUNK_BYTES,
        *,
        hand_off_lines: bool = False,
        resume: Resume | None = None,
    ) -> None:
        self._stream = stream
        self._chunk = chunk_bytes
        self._buf = b""
        self._pos = 0
        self._keep: int | None = None  # start of bytes still needed (a record being framed)
        self._offset = 0  # absolute offset of _buf[0], for error messages
        self._eof = False
        self._partial = b""  # a UTF-8 sequence split by the chunk boundary
        self.records = 0
        self._hand_off = hand_off_lines
        self._resume = resume
        if resume is not None:
            self._offset, self.records = resume.offset, resume.records
        self.handoff: Handoff | None = None
        self._bulk_after = 0  # stream offset before which `_elements` is not tried again

    def __iter__(self) -> Iterator[Block]:
        if self._resume is not None:
            self._more()
            array = self._resume.array
            if array is None:
                yield from self._objects()
                return
            yield from self._elements_of(array.what)
            yield from self._after_array(array)
            return
        self._more()
        if self._buf.startswith(_BOM):
            self._pos = len(_BOM)
        char = self._skip_ws()
        if char is None:
            return
        if char == _LBRACKET:
            array = InArray("the top-level array", None)
            if (yield from self._array(array)):
                yield from self._after_array(array)
        elif char == _LBRACE:
            start = yield from self._first_object()
            if start is None:
                if self.handoff is None:
                    self._expect_end("after the object holding the messages")
                return
            if self._hand_off:
                # NDJSON (or concatenated objects) from the first record on: see `Handoff`.
                self.handoff = Handoff(self._buf[start:], self._offset + start, self._partial)
                return
            self.records += 1
            yield self._one_line(self._buf[start : self._pos]), 1
            yield from self._objects()
        else:
            raise self._error(f"expected JSON, found {show_byte(char)}")

    def _objects(self) -> Iterator[Block]:
        """The records of NDJSON, or of objects one after another, from the position on."""
        while (char := self._skip_ws()) is not None:
            if char != _LBRACE:
                raise self._error(f"expected a JSON object (NDJSON line), found {show_byte(char)}")
            yield self._run(_NDJSON_RUN, array=False) or self._record()

    def _error(self, reason: str) -> DecodeError:
        return DecodeError(f"{reason} at byte {self._offset + self._pos}")

    def _more(self) -> bool:
        """Reads the next chunk, dropping what is consumed; False at the end of the stream."""
        if self._eof:
            return False
        cut = self._pos if self._keep is None else min(self._pos, self._keep)
        pending = len(self._buf) - cut
        if pending > MAX_RECORD_BYTES:
            raise self._error(f"a single JSON record is larger than {MAX_RECORD_BYTES} bytes")
        data = self._stream.read(max(self._chunk, pending))
        self._check_utf8(data)
        if not data:
            self._eof = True
            return False
        self._buf = self._buf[cut:] + data
        self._offset += cut
        self._pos -= cut
        if self._keep is not None:
            self._keep -= cut
        return True

    def _check_utf8(self, data: bytes) -> None:
        """Raises unless the stream so far is valid UTF-8 (pyarrow's JSON parser does not check)."""
        piece = self._partial + data
        complete = len(piece) if not data else complete_utf8(piece)
        self._partial = piece[complete:]
        try:
            validate_utf8(piece[:complete])
        except pa.ArrowInvalid:
            try:
                piece[:complete].decode("utf-8")
            except UnicodeDecodeError as error:
                where = self._offset + len(self._buf) - len(piece) + len(data) + error.start
                raise DecodeError(f"invalid UTF-8 at byte {where}") from None
            raise

    def _skip_ws(self) -> int | None:
        """The next significant byte (not consumed), or None at the end of the stream."""
        while True:
            self._pos = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            if self._pos < len(self._buf):
                return self._buf[self._pos]
            if not self._more():
                return None

    def _value(self) -> tuple[int, int]:
        """Consumes one JSON value; returns its (start, end) in the current buffer."""
        while True:
            end = value_end(self._buf, self._pos, self._eof)
            if end >= 0:
                start, self._pos = self._pos, end
                return start, end
            if self._eof:
                raise self._error("JSON ends in the middle of a value (truncated?)")
            self._more()

    def _record(self) -> Block:
        start, end = self._value()
        self.records += 1
        return self._one_line(self._buf[start:end]), 1

    def _one_line(self, record: bytes) -> bytes:
        """The record on one line: its line breaks are whitespace between tokens, which may
        become spaces; a raw one inside a string is invalid JSON and must not be mended."""
        if b"\n" not in record and b"\r" not in record:
            return record
        for string in _STRING.finditer(record):
            if b"\n" in string.group() or b"\r" in string.group():
                raise self._error(f"record {self.records - 1} has a raw line break in a string")
        return record.replace(b"\r", b" ").replace(b"\n", b" ")

    def _run(self, run: re.Pattern[bytes], array: bool) -> Block | None:
        """Consumes a run of flat one-line records with their separators, if one starts here."""
        found = run.match(self._buf, self._pos)
        if found is None:
            return None
        self._pos = found.end()
        block = found.group()
        if array:
            # The records hold no raw line break, so every ",\n" is a separator.
            if b"\r" in block:
                block = block.replace(b",\r\n", b"\n")
            block = block.replace(b",\n", b"\n")
        rows = block.count(b"\n")
        self.records += rows
        return block.rstrip(b" \t\r\n"), rows

    def _elements(self) -> Block | None:
        """A run of whole array elements from the position on, framed by msgspec, if they
        are objects and end before the buffer does; the position moves past the last one."""
        if self._offset + self._pos < self._bulk_after:
            return None
        while len(self._buf) - self._pos < self._chunk and self._more():
            pass
        start, end = self._pos, len(self._buf)
        for _ in range(_BULK_TRIES):
            cut = self._buf.rfind(b"},", start, end)
            if cut < 0 and self._eof:
                cut = self._buf.rfind(b"}", start, end)
            if cut < 0:
                break
            stretch = memoryview(self._buf)[start : cut + 1]
            try:
                elements = _ELEMENTS.decode(b"".join((b"[", stretch, b"]")))  # one copy
            except (msgspec.DecodeError, RecursionError):
                end = cut
                continue
            block = b"\n".join(elements)
            if block.count(b"\n") != len(elements) - 1 or b"\r" in block:
                # Line breaks inside elements are whitespace (msgspec has read them as such).
                block = b"\n".join(
                    bytes(element).replace(b"\r", b" ").replace(b"\n", b" ") for element in elements
                )
            if block[:1] != b"{" or _NOT_AN_OBJECT_NEXT.search(block):
                break  # an element that is not an object: framed one by one, it is reported
            self._pos = cut + 1
            self.records += len(elements)
            return block, len(elements)
        self._bulk_after = self._offset + end
        return None

    def _expect(self, expected: bytes, where: str) -> int:
        char = self._skip_ws()
        if char is None:
            raise self._error(f"JSON ends {where} (truncated?)")
        if char not in expected:
            wanted = " or ".join(repr(chr(c)) for c in expected)
            raise self._error(f"expected {wanted} {where}, found {show_byte(char)}")
        self._pos += 1
        return char

    def _expect_end(self, where: str) -> None:
        if self._skip_ws() is not None:
            raise self._error(f"unexpected data {where}")

    def _array(self, array: InArray) -> Generator[Block, None, bool]:
        """Yields the elements of the array at the current position (each must be an object);
        returns True once they are read, False if they are handed off instead (`Handoff`)."""
        self._pos += 1
        if self._skip_ws() == _RBRACKET:
            self._pos += 1
            return True
        if self._hand_off:
            at = self._pos
            self.handoff = Handoff(self._buf[at:], self._offset + at, self._partial, array)
            return False
        yield from self._elements_of(array.what)
        return True

    def _after_array(self, array: InArray) -> Iterator[Block]:
        """Whatever follows the array of messages: the rest of its wrapper, then nothing."""
        if array.wrapper is None:
            self._expect_end("after the top-level array")
            return
        if self._expect(b",}", "between keys of the object") != _RBRACE:
            yield from self._members(array.wrapper)
        self._expect_end("after the object holding the messages")

    def _elements_of(self, what: str) -> Iterator[Block]:
        """Yields the elements of an array from the position on, up to its closing bracket."""
        while True:
            char = self._skip_ws()
            if char is None:
                raise self._error(f"JSON ends inside {what} (truncated?)")
            if char != _LBRACE:
                found = show_byte(char)
                raise self._error(f"element {self.records} of {what} is not an object ({found})")
            block = self._elements()
            if block is None:
                block = self._run(_ARRAY_RUN, array=True)
                if block is not None:
                    yield block  # its separators are consumed: the next element follows
                    continue
                block = self._record()
            yield block
            if self._expect(b",]", f"between elements of {what}") == _RBRACKET:
                return

    def _first_object(self) -> Generator[Block, None, int | None]:
        """Frames the first top-level object: a wrapper (its array's elements are the records)
        or a record itself. A wrapper is an object with an array under one of WRAPPER_KEYS that
        comes before any `id`/`chatId` key. Returns None for a wrapper, else where the record
        starts in the buffer (it ends at the position)."""
        self._keep = self._pos
        self._pos += 1
        wrapper: str | None = None
        if self._skip_ws() == _RBRACE:
            self._pos += 1
        else:
            wrapper = yield from self._members(None)
        if wrapper is not None:
            return None
        assert self._keep is not None
        start, self._keep = self._keep, None
        return start

    def _members(self, wrapper: str | None) -> Generator[Block, None, str | None]:
        """Frames an object's members from a key on, up to its closing brace, yielding the
        records of the array of messages if one is among them; returns its key, if any.
        The array's elements may be handed off: members after it are then left unread."""
        is_record = False
        while True:
            key = self._key()
            self._expect(b":", f"after the key {key!r}")
            char = self._skip_ws()
            if char == _LBRACKET and key in WRAPPER_KEYS and not is_record:
                if wrapper is None:
                    wrapper, self._keep = key, None
                    if not (yield from self._array(InArray(f"the {key!r} array", key))):
                        return wrapper
                else:
                    self._empty_array(f"holds messages under both {wrapper!r} and {key!r}")
            else:
                is_record = is_record or key in _RECORD_KEYS
                if char is None:
                    raise self._error("JSON ends in the middle of an object (truncated?)")
                self._value()
            if self._expect(b",}", "between keys of the object") == _RBRACE:
                return wrapper

    def _key(self) -> str:
        if self._skip_ws() != _QUOTE:
            raise self._error("expected a quoted key in the JSON object")
        start, end = self._value()
        try:
            key = json.loads(self._buf[start:end])
        except ValueError:
            raise self._error("invalid key in the JSON object") from None
        return str(key)

    def _empty_array(self, reason: str) -> None:
        self._pos += 1
        if self._skip_ws() != _RBRACKET:
            raise self._error(f"the object {reason}")
        self._pos += 1
