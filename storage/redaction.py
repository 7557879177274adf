"""One redaction function for every text that leaves the process.

Logs, the ledger's `reason`s (before they are stored), `status`, `check` and error bodies all
pass through `redact`, which replaces the API key and every callback token with `***`.

Secrets are registered process-wide as they become known: the API key when settings are
loaded, each callback token when it is sent to the upstream. Tokens this process never saw
(another replica's, an attacker's guesses) are still caught where they appear as the last
segment of a callback URL. Reasons are redacted before the ledger stores them, so a command run
in another process shows them masked too. It lives in `storage`, which imports nothing of ours,
so every package may use it.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from typing import Any
from urllib.parse import quote

MASK = "***"
_MAX_TOKENS = 10_000  # the newest tokens are kept; older ones are still caught by the patterns

# The token segment of a callback URL, also when the URL is percent-encoded in a query.
_CALLBACK_TOKEN = re.compile(
    r"(callbacks(?:/|%2F)[^/\s\"'?#%]+(?:/|%2F))[A-Za-z0-9_-]+", re.IGNORECASE
)
_lock = threading.Lock()
_keys: set[str] = set()
_tokens: OrderedDict[str, None] = OrderedDict()


def add_secret(value: str | None) -> None:
    """A long-lived secret (the API key): masked wherever it appears, for the process's life."""
    if value and len(value) >= 4:
        with _lock:
            _keys.add(value)


def add_token(token: str) -> None:
    """A callback token this process minted or was given; the newest `_MAX_TOKENS` are kept."""
    if not token:
        return
    with _lock:
        _tokens[token] = None
        _tokens.move_to_end(token)
        while len(_tokens) > _MAX_TOKENS:
            _tokens.popitem(last=False)


def redact(text: str) -> str:
    """`text` with the API key and every callback token replaced by `***`."""
    if not text:
        return text
    with _lock:
        literals = sorted(_keys | set(_tokens), key=len, reverse=True)
    for secret in literals:
        if secret in text:
            text = text.replace(secret, MASK)
        quoted = quote(secret, safe="")
        if quoted != secret and quoted in text:
            text = text.replace(quoted, MASK)
    return _CALLBACK_TOKEN.sub(lambda match: match.group(1) + MASK, text)


def redact_value(value: Any) -> Any:
    """Every string inside a JSON-like value (dicts, lists), redacted; keys included."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact_value(key): redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(item) for item in value]
    return value


def forget_all() -> None:
    """Forgets every registered secret (tests that change keys within one process)."""
    with _lock:
        _keys.clear()
        _tokens.clear()
