"""Finds the records of a JSON file as byte ranges, in bounded memory, without parsing them.

A JSON array of messages, an object wrapping that array, NDJSON, or concatenated objects: the
scanner walks the framing (the outer array, the wrapper's keys, the gaps between lines) itself
and hands each record object on as bytes, one per line, for pyarrow to parse. Whole exports never
sit in memory and nothing recurses, so nesting depth is checked instead of blowing the stack.
Each record is located with one regular-expression match when it is flat (the usual case) and
with a bracket-counting loop when it nests.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Generator, Iterator
from typing import IO

from receiver.decoding.errors import DecodeError

# Keys under which an object may hold the array of messages.
WRAPPER_KEYS = frozenset({"data", "messages", "chatMessages", "items", "records"})
# Keys that mark a top-level object as a message rather than a wrapper.
_RECORD_KEYS = frozenset({"id", "chatId"})

MAX_DEPTH = 64
MAX_RECORD_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 4 * 1024 * 1024

_BOM = b"\xef\xbb\xbf"
_WS = re.compile(rb"[ \t\r\n]*")
_STRING_REST = re.compile(rb'(?:[^"\\]++|\\.)*+"', re.DOTALL)
_FLAT_OBJECT = re.compile(rb'\{(?:[^"{}\[\]]++|"(?:[^"\\]++|\\.)*+")*+\}', re.DOTALL)
_STRUCTURE = re.compile(rb'["\[\]{}]')
_SCALAR = re.compile(rb"[-+.0-9A-Za-z]+")
_CLOSERS = {ord("]"): ord("["), ord("}"): ord("{")}

_LBRACKET, _RBRACKET, _LBRACE, _RBRACE = b"[]{}"
_QUOTE, _COMMA, _COLON = ord('"'), ord(","), ord(":")


def value_end(buf: bytes, pos: int, final: bool) -> int:
    """Where the JSON value starting at `pos` ends, or -1 when `buf` stops before it does.

    Checks nesting depth and bracket pairing only; the record's contents are validated later
    by the parser that reads it.
    """
    first = buf[pos]
    if first == _LBRACE:
        flat = _FLAT_OBJECT.match(buf, pos)
        if flat is not None:
            return flat.end()
    elif first == _QUOTE:
        string = _STRING_REST.match(buf, pos + 1)
        return -1 if string is None else string.end()
    elif first != _LBRACKET:
        scalar = _SCALAR.match(buf, pos)
        if scalar is None:
            raise DecodeError(f"unexpected character {chr(first)!r} where a JSON value starts")
        if scalar.end() == len(buf) and not final:
            return -1
        return scalar.end()
    stack = bytearray()
    at = pos
    while True:
        found = _STRUCTURE.search(buf, at)
        if found is None:
            return -1
        char = buf[found.start()]
        at = found.end()
        if char == _QUOTE:
            string = _STRING_REST.match(buf, at)
            if string is None:
                return -1
            at = string.end()
        elif char in (_LBRACKET, _LBRACE):
            stack.append(char)
            if len(stack) > MAX_DEPTH:
                raise DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels")
        else:
            if not stack or stack.pop() != _CLOSERS[char]:
                raise DecodeError(f"JSON has a mismatched {chr(char)!r}")
            if not stack:
                return at


class RecordScanner:
    """Yields the record objects of one JSON document stream, as bytes without line breaks."""

    def __init__(self, stream: IO[bytes], chunk_bytes: int = CHUNK_BYTES) -> None:
        self._stream = stream
        self._chunk = chunk_bytes
        self._buf = b""
        self._pos = 0
        self._keep: int | None = None  # start of bytes still needed (a record being framed)
        self._offset = 0  # absolute offset of _buf[0], for error messages
        self._eof = False
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self.records = 0

    def __iter__(self) -> Iterator[bytes]:
        self._more()
        if self._buf.startswith(_BOM):
            self._pos = len(_BOM)
        char = self._skip_ws()
        if char is None:
            return
        if char == _LBRACKET:
            yield from self._array("the top-level array")
            self._expect_end("after the top-level array")
        elif char == _LBRACE:
            wrapped = yield from self._first_object()
            if wrapped:
                self._expect_end("after the object holding the messages")
                return
            while (char := self._skip_ws()) is not None:
                if char != _LBRACE:
                    raise self._error(f"expected a JSON object (NDJSON line), found {chr(char)!r}")
                yield self._record()
        else:
            raise self._error(f"expected JSON, found {chr(char)!r}")

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
        try:
            self._utf8.decode(data, final=not data)
        except UnicodeDecodeError as error:
            where = self._offset + len(self._buf) + error.start
            raise DecodeError(f"invalid UTF-8 near byte {where}") from None
        if not data:
            self._eof = True
            return False
        self._buf = self._buf[cut:] + data
        self._offset += cut
        self._pos -= cut
        if self._keep is not None:
            self._keep -= cut
        return True

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

    def _record(self) -> bytes:
        start, end = self._value()
        self.records += 1
        record = self._buf[start:end]
        if b"\n" in record or b"\r" in record:
            # Outside strings a line break is whitespace; inside them JSON forbids it raw.
            record = record.replace(b"\r", b" ").replace(b"\n", b" ")
        return record

    def _expect(self, expected: bytes, where: str) -> int:
        char = self._skip_ws()
        if char is None:
            raise self._error(f"JSON ends {where} (truncated?)")
        if char not in expected:
            wanted = " or ".join(repr(chr(c)) for c in expected)
            raise self._error(f"expected {wanted} {where}, found {chr(char)!r}")
        self._pos += 1
        return char

    def _expect_end(self, where: str) -> None:
        if self._skip_ws() is not None:
            raise self._error(f"unexpected data {where}")

    def _array(self, what: str) -> Iterator[bytes]:
        """Yields the elements of the array at the current position (each must be an object)."""
        self._pos += 1
        if self._skip_ws() == _RBRACKET:
            self._pos += 1
            return
        while True:
            char = self._skip_ws()
            if char != _LBRACE:
                found = "the end" if char is None else repr(chr(char))
                raise self._error(f"element {self.records} of {what} is not an object ({found})")
            yield self._record()
            if self._expect(b",]", f"between elements of {what}") == _RBRACKET:
                return

    def _first_object(self) -> Generator[bytes, None, bool]:
        """Frames the first top-level object: a wrapper (its array's elements are the records)
        or a record itself. A wrapper is an object with an array under one of WRAPPER_KEYS that
        comes before any `id`/`chatId` key. Returns whether it was a wrapper."""
        self._keep = self._pos
        self._pos += 1
        wrapper: str | None = None
        is_record = False
        if self._skip_ws() == _RBRACE:
            self._pos += 1
        else:
            while True:
                key = self._key()
                self._expect(b":", f"after the key {key!r}")
                char = self._skip_ws()
                if char == _LBRACKET and key in WRAPPER_KEYS and not is_record:
                    if wrapper is None:
                        wrapper, self._keep = key, None
                        yield from self._array(f"the {key!r} array")
                    else:
                        self._empty_array(f"holds messages under both {wrapper!r} and {key!r}")
                else:
                    is_record = is_record or key in _RECORD_KEYS
                    if char is None:
                        raise self._error("JSON ends in the middle of an object (truncated?)")
                    self._value()
                if self._expect(b",}", "between keys of the object") == _RBRACE:
                    break
        if wrapper is not None:
            return True
        assert self._keep is not None
        start, self._keep = self._keep, None
        self.records += 1
        record = self._buf[start : self._pos]
        yield record.replace(b"\r", b" ").replace(b"\n", b" ")
        return False

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
