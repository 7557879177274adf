"""What one structured log line costs as `serve` learns callback tokens.

Every log line is redacted (the API key and every callback token this process minted become
`***`), and `serve` keeps up to 10,000 tokens. This logs the receiver's most frequent line,
`callback_not_found`, through the real formatter to /dev/null with 0, 1,000 and 10,000 tokens
registered; the baseline is the same line with none. Target: a line with 10,000 tokens costs at
most twice one with none. Exits 1 if it does not.

    python bench/redaction.py
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time

from benchlib import exit_status, print_table

from archiver.logs import configure_logging
from storage import redaction

TOKEN_COUNTS = (0, 1_000, 10_000)
LINES = 300
TARGET_RATIO = 2.0


def _line_seconds(log: logging.Logger) -> float:
    started = time.perf_counter()
    for _ in range(LINES):
        log.warning("callback_not_found", extra={"export_id": "0" * 32})
    return (time.perf_counter() - started) / LINES


def main() -> int:
    configure_logging("INFO", ["bench-api-key-0123456789"])
    with open(os.devnull, "w") as sink:
        handler = logging.getLogger().handlers[0]
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(sink)
        log = logging.getLogger("chat_archiver.receiver.intake")
        _line_seconds(log)  # warm-up
        rows, costs, known = [], {}, 0
        for count in TOKEN_COUNTS:
            for _ in range(count - known):
                redaction.add_token(secrets.token_urlsafe(32))
            known = count
            costs[count] = min(_line_seconds(log) for _ in range(3))
            ratio = costs[count] / costs[0]
            rows.append([f"{count:,}", f"{costs[count] * 1e6:.1f}", f"{ratio:.2f}x"])
    print_table(["tokens known", "us a line", "vs none"], rows)
    ratio = costs[TOKEN_COUNTS[-1]] / costs[0]
    missed = [f"{ratio:.1f}x with {TOKEN_COUNTS[-1]:,} tokens"] if ratio > TARGET_RATIO else []
    return exit_status(missed)


if __name__ == "__main__":
    sys.exit(main())
