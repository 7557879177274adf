"""JSON text built column-wise with Arrow compute: string values encoded as JSON strings,
insignificant whitespace taken out of JSON values, and one JSON object per row from columns
of JSON text. No value passes through Python on its own; that is what keeps a window whose
records all carry unknown fields as fast as a clean one.
"""

from __future__ import annotations

import json
import re

import pyarrow as pa
import pyarrow.compute as pc

# Python's json module (ensure_ascii=False) escapes these; every other character stays as is.
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_ESCAPES["\f"] = "\\f"
_CONTROL = "".join(chr(code) for code in range(0x20) if chr(code) not in _ESCAPES)
_NEEDS_ESCAPE = '[\\\\"\\x00-\\x1f]'
# A JSON string, or whitespace outside one (RE2 and Python's re read it alike).
_TOKEN_OR_SPACE = r'("(?:[^"\\]|\\.)*")|[ \t\r\n]+'
_TOKEN_OR_SPACE_RE = re.compile(_TOKEN_OR_SPACE, re.DOTALL)
# An object or array with whitespace somewhere in its text (one RE2 pass over the column).
_NESTED_WITH_SPACE = r"^[{\[][^ \t\r\n]*[ \t\r\n]"
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def json_strings(strings: pa.Array) -> pa.Array:
    """Each string as a JSON string, exactly as `json.dumps(value, ensure_ascii=False)`
    writes it; nulls stay null."""
    strings = strings.cast(pa.string())
    if pc.any(pc.match_substring_regex(strings, _NEEDS_ESCAPE)).as_py():
        for char, escaped in _ESCAPES.items():
            strings = pc.replace_substring(strings, char, escaped)
        for char in _CONTROL:
            strings = pc.replace_substring(strings, char, f"\\u{ord(char):04x}")
    return pc.binary_join_element_wise('"', strings, '"', "")


def compact(texts: pa.Array) -> pa.Array:
    """JSON values without whitespace between their tokens (`{"a": [1, 2]}` -> `{"a":[1,2]}`);
    numbers, strings and key order stay exactly as written. Scalars are left alone."""
    texts = texts.cast(pa.string())
    spaced = pc.fill_null(pc.match_substring_regex(texts, _NESTED_WITH_SPACE), False)
    if not pc.any(spaced).as_py():
        return texts
    tight = pc.replace_substring_regex(pc.filter(texts, spaced), _TOKEN_OR_SPACE, r"\1")
    return pc.replace_with_mask(texts, spaced, tight)


def compact_text(text: str) -> str:
    """`compact` for one value (the per-record paths use it, so both give the same text)."""
    if text[:1] not in ("{", "[") or not any(c in text for c in " \t\r\n"):
        return text
    return _TOKEN_OR_SPACE_RE.sub(lambda found: found.group(1) or "", text)


def json_objects(columns: list[tuple[str, pa.Array]], rows: int) -> pa.Array:
    """One JSON object per row, `{"key":value,...}`, from (key, JSON text) columns in the order
    given; a null value leaves its key out, and a row with no value at all is null."""
    if not columns:
        return pa.nulls(rows, pa.string())
    if len(columns) == 1:  # the usual drift: one pass, a null value is a null row
        key, values = columns[0]
        opening = "{" + _ENCODER.encode(key) + ":"
        return pc.binary_join_element_wise(opening, values.cast(pa.string()), "}", "")
    pieces = [
        pc.binary_join_element_wise("," + _ENCODER.encode(key) + ":", values.cast(pa.string()), "")
        for key, values in columns
    ]
    joined = pc.binary_join_element_wise(*pieces, "", null_handling="replace", null_replacement="")
    body = pc.utf8_slice_codeunits(joined, 1)  # the first piece's comma
    objects = pc.binary_join_element_wise("{", body, "}", "")
    return pc.if_else(pc.equal(joined, ""), pa.scalar(None, pa.string()), objects)
