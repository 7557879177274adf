"""`chat-archiver check`: each dependency in turn, one line per check, and what was seen.

Every probe has a bound and none retries: a check that hangs or passes on a wrong answer is
worse than none. The API is probed twice: with a key that cannot be valid (the platform
documents 401 for it, so anything else means the URL is not its API) and with the real key (a
chat that does not exist: 404 "Chat not found" proves the key was accepted).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass

import httpx

from archiver.ledger_access import sqlite_path
from archiver.settings import Settings
from scheduler.client import MESSAGES_PATH
from scheduler.requester import KEY_REJECTED, key_fingerprint
from storage.ledger import Ledger, LedgerError
from storage.objectstore import StoreError
from storage.redaction import redact
from storage.stores import open_store

PROBE_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
NO_SUCH_CHAT = "00000000-0000-4000-8000-000000000000"
INVALID_KEY = "chat-archiver-check-not-a-key"
# The receiver's answer to an unknown export id, which only chat-archiver gives.
RECEIVER_NOT_FOUND = {"error": "not_found", "detail": "no such callback"}


@dataclass(frozen=True)
class Result:
    name: str
    ok: bool
    detail: str


def _seen(response: httpx.Response) -> str:
    """What an answer was, in one short line (never a whole HTML page)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        text = body["message"]
    else:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        text = f"a {kind} body" if response.content else "an empty body"
    return f"{response.status_code} {response.reason_phrase} ({' '.join(text.split())[:120]})"


def _transport_problem(url: str, error: httpx.HTTPError) -> str:
    return f"cannot reach {url}: {type(error).__name__}: {str(error) or 'no answer'}"[:240]


def missing_settings(settings: Settings) -> list[str]:
    """The settings `serve` needs that are not set, all at once."""
    missing = []
    if not settings.api_url:
        missing.append("ARCHIVER_API_URL")
    if not settings.api_key:
        missing.append("ARCHIVER_API_KEY (or ARCHIVER_API_KEY_FILE)")
    if not settings.public_url:
        missing.append("ARCHIVER_PUBLIC_URL")
    return missing


def check_configuration(settings: Settings, warnings: list[str]) -> Result:
    missing = missing_settings(settings)
    problems = []
    if missing:
        problems.append("not set: " + ", ".join(missing))
    problems += warnings
    if problems:
        return Result("configuration", False, "; ".join(problems))
    return Result("configuration", True, f"storage {settings.storage_url}")


def check_ledger(settings: Settings) -> Result:
    path = sqlite_path(settings.ledger_url)
    if path is not None and not path.exists():
        if not path.parent.is_dir():
            return Result("ledger", False, f"directory {path.parent} does not exist")
        return Result("ledger", True, f"none yet at {path}; `serve` creates it")
    try:
        ledger = Ledger.open(settings.ledger_url)
    except LedgerError as error:
        return Result("ledger", False, str(error))
    try:
        ledger.ping()
    except LedgerError as error:
        return Result("ledger", False, str(error))
    finally:
        ledger.close()
    return Result("ledger", True, ledger.url)


def check_store(settings: Settings) -> Result:
    name = "object store (write, read, delete)"
    try:
        store = open_store(settings.storage_url, settings.s3)
        store.check_access()
    except StoreError as error:
        return Result(name, False, str(error))
    return Result(name, True, store.description)


def check_api(settings: Settings, client: httpx.Client) -> Result:
    """Is ARCHIVER_API_URL the platform's API, and does it accept the key?"""
    assert settings.api_url and settings.api_key
    url = settings.api_url + MESSAGES_PATH
    params = {"chatId": NO_SUCH_CHAT}
    try:
        wrong = client.get(url, params=params, headers={"authorization": INVALID_KEY})
    except httpx.HTTPError as error:
        return Result("API URL", False, _transport_problem(url, error))
    if wrong.status_code != 401:
        return Result(
            "API URL",
            False,
            f"GET {url} with an invalid key answered {_seen(wrong)}, not the platform's 401; "
            "is ARCHIVER_API_URL the base URL, without /api/v1?",
        )
    try:
        answer = client.get(url, params=params, headers={"authorization": settings.api_key})
    except httpx.HTTPError as error:
        return Result("API key", False, _transport_problem(url, error))
    if answer.status_code in (401, 403):
        return Result("API key", False, f"the platform rejected the key: {_seen(answer)}")
    if answer.status_code in (200, 404):
        return Result("API key", True, f"accepted by {settings.api_url}")
    return Result("API key", False, f"unexpected answer to a key check: {_seen(answer)}")


def check_public_url(settings: Settings, client: httpx.Client) -> Result:
    """POSTs to the callback route through ARCHIVER_PUBLIC_URL, as the platform would."""
    name = "public URL reaches /callbacks"
    if not settings.public_url:
        return Result(name, False, "ARCHIVER_PUBLIC_URL is not set")
    url = f"{settings.public_url}/callbacks/check-{secrets.token_hex(8)}/{secrets.token_urlsafe(8)}"
    try:
        answer = client.post(url, content=b"{}", headers={"content-type": "application/json"})
    except httpx.HTTPError as error:
        problem = _transport_problem(url, error)
        return Result(name, False, f"{problem}; the platform cannot reach it either")
    try:
        body = answer.json()
    except ValueError:
        body = None
    if answer.status_code == 404 and body == RECEIVER_NOT_FOUND:
        return Result(name, True, f"{settings.public_url}/callbacks/ answers as chat-archiver")
    return Result(
        name,
        False,
        f"POST {url.rsplit('/', 2)[0]}/... answered {_seen(answer)}, not chat-archiver's 404; "
        "the platform's callbacks would not arrive",
    )


def _clear_key_rejection(settings: Settings) -> bool:
    """A key the platform accepts again lifts the stop that a 401 put on requests."""
    path = sqlite_path(settings.ledger_url)
    if settings.api_key is None or (path is not None and not path.exists()):
        return False
    try:
        with Ledger.open(settings.ledger_url) as ledger:
            if ledger.get_meta(KEY_REJECTED) == key_fingerprint(settings.api_key):
                ledger.set_meta(KEY_REJECTED, None)
                return True
    except LedgerError:
        return False
    return False


def run_checks(settings: Settings, warnings: list[str], *, public_url: bool) -> list[Result]:
    results = [check_configuration(settings, warnings), check_ledger(settings)]
    results.append(check_store(settings))
    with httpx.Client(timeout=PROBE_TIMEOUT, follow_redirects=False) as client:
        if settings.api_url and settings.api_key:
            results.append(check_api(settings, client))
        if public_url:
            results.append(check_public_url(settings, client))
    return results


def check(
    settings: Settings, *, warnings: list[str], public_url: bool = False, as_json: bool = False
) -> int:
    results = run_checks(settings, warnings, public_url=public_url)
    key_ok = any(r.name == "API key" and r.ok for r in results)
    cleared = key_ok and _clear_key_rejection(settings)
    ok = all(r.ok for r in results)
    if as_json:
        document = {
            "ok": ok,
            "checks": [asdict(result) for result in results],
            "key_rejection_cleared": cleared,
        }
        print(redact(json.dumps(document, indent=2)))
    else:
        for result in results:
            if result.ok:
                print(f"ok    {result.name}: {result.detail}")
            else:
                print(redact(f"FAIL  {result.name}: {result.detail}"))
        if cleared:
            print("      the key is accepted again; requests resume")
    return 0 if ok else 1
