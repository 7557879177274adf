"""Where one JSON value ends in a buffer, found without parsing it and without recursion.

The scanner frames records with it, and the exact paths take the text of single values with
it; nesting depth is counted here, so input nested deeper than the parsers can take is refused
with a clear error before any parser meets it.
"""

from __future__ import annotations

import re

from receiver.decoding.errors import DecodeError

MAX_DEPTH = 64

# Strings and flat objects as "unrolled loops" (no alternation per character): fastest in re.
_STRING_REST = re.compile(rb'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_FLAT_OBJECT = re.compile(
    rb'\{[^"{}\[\]]*+(?:"[^"\\]*+(?:\\.[^"\\]*+)*+"[^"{}\[\]]*+)*+\}', re.DOTALL
)
_STRUCTURE = re.compile(rb'["\[\]{}]')
_SCALAR = re.compile(rb"[-+.0-9A-Za-z]+")
_CLOSERS = {ord("]"): ord("["), ord("}"): ord("{")}
_LBRACKET, _LBRACE = b"[{"
_QUOTE = ord('"')


def show_byte(char: int) -> str:
    """A byte for an error message: the character when printable ASCII, else its hex code."""
    return repr(chr(char)) if 0x20 <= char < 0x7F else f"byte 0x{char:02x}"


def value_end(buf: bytes, pos: int, final: bool, max_depth: int = MAX_DEPTH) -> int:
    """Where the JSON value starting at `pos` ends, or -1 when `buf` stops before it does.

    Checks nesting depth (at most `max_depth` levels) and bracket pairing only; the record's
    contents are validated later by the parser that reads it.
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
            raise DecodeError(f"unexpected {show_byte(first)} where a JSON value starts")
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
            if len(stack) > max_depth:
                raise DecodeError(f"JSON nested deeper than {MAX_DEPTH} levels")
        else:
            if not stack or stack.pop() != _CLOSERS[char]:
                raise DecodeError(f"JSON has a mismatched {show_byte(char)}")
            if not stack:
                return at
