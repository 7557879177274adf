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
from collections import Counter, OrderedDict
from typing import Any
from urllib.parse import quote

MASK = "***"
_MAX_TOKENS = 10_000  # the newest tokens are kept; older ones are still caught by the patterns

# The token segment of a callback URL, also when the URL is percent-encoded in a query.
_CALLBACK_TOKEN = re.compile(
    r"(callbacks(?:/|%2F)[^/\s\"'?#%]+(?:/|%2F))[A-Za-z0-9_-]+", re.IGNORECASE
)
# Tokens are URL-safe text (what the ledger mints), which percent-encoding leaves as it is. A
# text is searched for them run by run of such characters, with set look-ups: the cost is the
# text's length, not the number of tokens (a long-lived `serve` knows thousands).
_SHORTEST_TOKEN = 16
_URL_SAFE = re.compile(rf"[A-Za-z0-9_-]{{{_SHORTEST_TOKEN},}}")
_lock = threading.Lock()
_keys: frozenset[str] = frozenset()
_tokens: OrderedDict[str, None] = OrderedDict()
_lengths: Counter[int] = Counter()  # how many of `_tokens` have each length
# Those lengths, longest first, so that of two tokens at one place the longer one is masked.
_token_lengths: tuple[int, ...] = ()


def add_secret(value: str | None) -> None:
    """A long-lived secret (the API key): masked wherever it appears, for the process's life."""
    global _keys
    if value and len(value) >= 4:
        with _lock:
            _keys = _keys | {value}


def add_token(token: str) -> None:
    """A callback token this process minted or was given; the newest `_MAX_TOKENS` are kept."""
    global _token_lengths
    if not token:
        return
    if not _URL_SAFE.fullmatch(token):
        add_secret(token)  # not what the ledger mints: matched literally, like the key
        return
    with _lock:
        if token in _tokens:
            _tokens.move_to_end(token)
            return
        _tokens[token] = None
        _lengths[len(token)] += 1
        while len(_tokens) > _MAX_TOKENS:
            oldest, _ = _tokens.popitem(last=False)
            _lengths[len(oldest)] -= 1
        _token_lengths = tuple(sorted((n for n in _lengths if _lengths[n]), reverse=True))


def redact(text: str) -> str:
    """`text` with the API key and every callback token replaced by `***`."""
    if not text:
        return text
    for secret in sorted(_keys, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
        quoted = quote(secret, safe="")
        if quoted != secret and quoted in text:
            text = text.replace(quoted, MASK)
    if _token_lengths:
        text = _URL_SAFE.sub(_mask_tokens, text)
    return _CALLBACK_TOKEN.sub(lambda match: match.group(1) + MASK, text)


def _mask_tokens(match: re.Match[str]) -> str:
    """One run of URL-safe characters, with every registered token in it masked."""
    run = match.group()
    if run in _tokens:
        return MASK
    lengths = _token_lengths
    if not lengths:
        return run  # forgotten meanwhile
    pieces: list[str] = []
    kept = at = 0
    while at + lengths[-1] <= len(run):
        for length in lengths:
            if run[at : at + length] in _tokens:
                pieces += (run[kept:at], MASK)
                at = kept = at + length
                break
        else:
            at += 1
    return "".join(pieces) + run[kept:] if pieces else run


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
    global _keys, _token_lengths
    with _lock:
        _keys = frozenset()
        _tokens.clear()
        _lengths.clear()
        _token_lengths = ()
