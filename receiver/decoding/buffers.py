"""Byte buffers handed whole to Arrow's kernels, which run at memory speed and without the GIL.

Both JSON readers check UTF-8 this way (pyarrow's JSON parser does not), and `lines` turns an
array's separators into line breaks with one replace over a block.
"""

from __future__ import annotations

import struct

import pyarrow as pa


def one_value(data: bytes | memoryview, kind: pa.DataType) -> pa.Array:
    """`data` as the single value of an Arrow array of `kind` (`large_string` or
    `large_binary`), without a copy, so Arrow's kernels can work on it."""
    offsets = pa.py_buffer(struct.pack("=qq", 0, len(data)))
    return pa.Array.from_buffers(kind, 1, [None, offsets, pa.py_buffer(data)])


def validate_utf8(data: bytes | memoryview) -> None:
    """Validates UTF-8 at memory speed (Arrow's validator), raising pa.ArrowInvalid."""
    one_value(data, pa.large_string()).validate(full=True)


def complete_utf8(data: bytes | memoryview) -> int:
    """The length of `data` without a multi-byte sequence cut off at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # an ASCII byte or a lead byte
            needed = 2 if byte >= 0xC0 else 1
            needed = 3 if byte >= 0xE0 else needed
            needed = 4 if byte >= 0xF0 else needed
            return len(data) - back if needed > back else len(data)
    return len(data)
