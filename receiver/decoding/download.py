"""Downloads an export file from a link in a callback, without trusting the link.

The link comes from outside, so every hop (the link and each redirect) is checked before any
byte is sent: http(s) only, https unless insecure links are allowed, never a downgrade from
https to http, and no private, loopback, link-local (the cloud metadata service at
169.254.169.254), multicast, reserved or unspecified address unless allowed. The host name is
resolved once per hop, every address it resolves to is checked, and the connection goes to one
of those checked addresses (the URL's host is replaced by the address; the original name is
sent as `Host` and as the TLS server name, which the certificate is verified against). So a DNS
answer that changes between the check and the connection (DNS rebinding) cannot redirect the
request. Environment proxy settings are ignored for the same reason: the proxy would connect
wherever it liked.

The body is streamed to disk and capped while streaming; the spool's free space is checked
against the announced size before the first byte and kept above a reserve while streaming, so a
download never fills the disk (`SpoolFull`); a partial file is removed on any failure. 5xx, 408,
429 and network errors are retried with backoff; 403, 404 and 410 mean the short-lived link has
expired.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urljoin

import httpx

from receiver.spool import Headroom, SpoolFull, ensure_room, is_disk_full
from storage.errors import ErrorKind, TransientError

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_EXPIRED = frozenset({403, 404, 410})
_TRANSIENT = frozenset({408, 425, 429, 500, 502, 503, 504})
# Kept as sent: gzip is sniffed and unwrapped by the decoder, under its expansion cap.
_RAW_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip"})
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_MAX_BACKOFF = 60.0
_CHUNK = 1024 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class DownloadPolicy:
    """What a download may do. `allowed_networks` (CIDRs) are reachable even though private,
    e.g. an in-cluster object store, while every other private address stays refused;
    `ca_file` replaces the system's certificate authorities (a store with a private CA)."""

    allow_insecure: bool = False
    allow_private: bool = False
    max_bytes: int = 10 * 1024**3
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_redirects: int = 5
    retries: int = 3
    allowed_networks: tuple[str, ...] = ()
    backoff: float = 0.5  # first retry delay in seconds; doubles per retry
    ca_file: Path | None = None


class DownloadError(TransientError):
    """The download failed, after retries for network errors and 5xx; asking for the export
    again may help."""


class DownloadRefused(DownloadError):
    """The link breaks the download policy (scheme, address, size, redirects)."""

    kind = ErrorKind.PERMANENT


class DownloadTooLarge(DownloadRefused):
    """The file is larger than `max_bytes` (announced, or found while streaming); a new export
    may be smaller, so the window is requested again."""

    kind = ErrorKind.TRANSIENT


class LinkExpired(DownloadError):
    """The link answered 403, 404 or 410: it has expired or never existed."""


class _Transient(TransientError):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def download(
    url: str,
    dest: Path,
    policy: DownloadPolicy,
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Streams the file at `url` to `dest`; returns the bytes written.

    `progress`, if given, is called with the running total after each chunk. Raises
    DownloadRefused, LinkExpired or DownloadError (after `policy.retries` retries), or
    SpoolFull; `dest` does not exist afterwards in those cases.
    """
    return download_with_digest(url, dest, policy, progress=progress)[0]


def download_with_digest(
    url: str,
    dest: Path,
    policy: DownloadPolicy,
    *,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, str]:
    """As `download`, and the SHA-256 (hex) of the bytes written, computed while streaming."""
    networks = tuple(ipaddress.ip_network(cidr, strict=False) for cidr in policy.allowed_networks)
    try:
        return _follow(url, dest, policy, networks, progress)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise


def _follow(
    url: str,
    dest: Path,
    policy: DownloadPolicy,
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
    progress: Callable[[int], None] | None,
) -> tuple[int, str]:
    current, previous_scheme = url, None
    redirects = failures = 0
    while True:
        target = _checked_url(current, policy, previous_scheme)
        try:
            addresses = _resolve(target, policy, networks)
            result = _fetch(target, addresses, dest, policy, progress)
        except _Transient as problem:
            failures += 1
            if failures > policy.retries:
                raise DownloadError(
                    f"download of {_redacted(target)} failed {failures} times: {problem}"
                ) from None
            time.sleep(_delay(policy, failures, problem.retry_after))
            continue
        if isinstance(result, tuple):
            return result
        redirects += 1
        if redirects > policy.max_redirects:
            raise DownloadRefused(
                f"more than {policy.max_redirects} redirects from {_redacted(target)}"
            )
        previous_scheme, current = target.scheme, result


def _checked_url(url: str, policy: DownloadPolicy, previous_scheme: str | None) -> httpx.URL:
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as error:
        raise DownloadRefused(f"the link is not a valid URL: {error}") from None
    scheme = target.scheme
    if scheme not in ("http", "https") or not target.host:
        raise DownloadRefused(f"only http(s) links are followed, not {scheme or 'this'!r}")
    if previous_scheme == "https" and scheme == "http":
        raise DownloadRefused(f"refused a redirect from https to http ({_redacted(target)})")
    if scheme == "http" and not policy.allow_insecure:
        raise DownloadRefused(
            f"refused an http link ({_redacted(target)}): links must be https (http is allowed "
            "by ARCHIVER_ALLOW_INSECURE_CALLBACKS, for tests and demos)"
        )
    if target.userinfo:
        raise DownloadRefused("refused a link with credentials in it (user:password@)")
    return target


def _resolve(
    target: httpx.URL,
    policy: DownloadPolicy,
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> list[IPAddress]:
    """Every address the host resolves to, all checked; refuses if any is not allowed."""
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise _Transient(f"cannot resolve {host}: {error}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if not _allowed(address, policy, networks):
            raise DownloadRefused(
                f"refused {_redacted(target)}: {host} resolves to {address}, a private, loopback, "
                "link-local or reserved address (allowed by ARCHIVER_DOWNLOAD_ALLOW_PRIVATE)"
            )
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _Transient(f"{host} resolves to no address")
    return addresses


def _allowed(
    address: IPAddress,
    policy: DownloadPolicy,
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...],
) -> bool:
    if any(address.version == net.version and address in net for net in networks):
        return True
    if policy.allow_private:
        return True
    if not address.is_global or address.is_multicast:
        return False
    if isinstance(address, ipaddress.IPv6Address):
        # IPv6 forms that carry an IPv4 address: judge the address they lead to.
        embedded = address.ipv4_mapped or address.sixtofour
        if address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if address.teredo:
            embedded = address.teredo[1]
        if embedded is not None:
            return _allowed(embedded, policy, networks)
    return True


def _client(policy: DownloadPolicy) -> httpx.Client:
    """A client for one connection attempt: a pooled connection, verified for one host name,
    must not carry a request for another name that resolves to the same address."""
    timeout = httpx.Timeout(
        connect=policy.connect_timeout,
        read=policy.read_timeout,
        write=policy.read_timeout,
        pool=policy.connect_timeout,
    )
    verify: ssl.SSLContext | bool = True
    if policy.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(policy.ca_file))
    return httpx.Client(timeout=timeout, verify=verify, trust_env=False, follow_redirects=False)


def _fetch(
    target: httpx.URL,
    addresses: list[IPAddress],
    dest: Path,
    policy: DownloadPolicy,
    progress: Callable[[int], None] | None,
) -> tuple[int, str] | str:
    """One request to the first reachable checked address: bytes written and their SHA-256,
    or a redirect's absolute location."""
    headers = {"Host": target.netloc.decode("ascii"), "Accept-Encoding": "identity"}
    extensions = (
        {"sni_hostname": target.raw_host.decode("ascii")} if target.scheme == "https" else {}
    )
    unreachable: list[str] = []
    for address in addresses:
        with _client(policy) as client:
            request = client.build_request(
                "GET", target.copy_with(host=str(address)), headers=headers, extensions=extensions
            )
            try:
                response = client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as error:
                unreachable.append(f"{address}: {error or type(error).__name__}")
                continue
            except httpx.RequestError as error:
                raise _Transient(f"{type(error).__name__}: {error}") from None
            try:
                return _handle(response, target, dest, policy, progress)
            finally:
                response.close()
    raise _Transient(f"cannot connect ({'; '.join(unreachable)})")


def _handle(
    response: httpx.Response,
    target: httpx.URL,
    dest: Path,
    policy: DownloadPolicy,
    progress: Callable[[int], None] | None,
) -> tuple[int, str] | str:
    status = response.status_code
    if status in _REDIRECTS and "location" in response.headers:
        return urljoin(str(target), response.headers["location"])
    if status in _EXPIRED:
        raise LinkExpired(f"the link {_redacted(target)} answered {status}: expired or gone")
    if status in _TRANSIENT or status >= 500:
        raise _Transient(f"{_redacted(target)} answered {status}", _retry_after(response))
    if status != 200:
        raise DownloadError(f"{_redacted(target)} answered {status}")
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > policy.max_bytes:
        raise DownloadTooLarge(
            f"the file is {int(declared)} bytes, more than the {policy.max_bytes}-byte limit"
        )
    expected = int(declared) if declared.isdigit() else None
    if expected is not None:
        ensure_room(dest.parent, expected, "the download")
    headroom = Headroom(dest.parent, "the download", expected)
    encoding = response.headers.get("content-encoding", "").strip().lower()
    chunks = (
        response.iter_raw(_CHUNK) if encoding in _RAW_ENCODINGS else response.iter_bytes(_CHUNK)
    )
    written = 0
    digest = hashlib.sha256()
    try:
        with dest.open("wb") as sink:
            for chunk in chunks:
                written += len(chunk)
                if written > policy.max_bytes:
                    raise DownloadTooLarge(
                        f"the file grew past the {policy.max_bytes}-byte limit; abandoned"
                    )
                headroom.wrote(len(chunk))
                sink.write(chunk)
                digest.update(chunk)
                if progress is not None:
                    progress(written)
    except httpx.RequestError as error:
        dest.unlink(missing_ok=True)
        raise _Transient(f"the transfer broke after {written} bytes: {error}") from None
    except (DownloadError, SpoolFull):
        dest.unlink(missing_ok=True)
        raise
    except OSError as error:
        dest.unlink(missing_ok=True)
        if is_disk_full(error):
            raise headroom.full() from None
        raise
    return written, digest.hexdigest()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _delay(policy: DownloadPolicy, failures: int, retry_after: float | None) -> float:
    backoff = policy.backoff * 2 ** (failures - 1)
    return min(_MAX_BACKOFF, max(backoff, retry_after or 0.0))


def _redacted(url: httpx.URL) -> str:
    """The URL without its query (signed links carry credentials there)."""
    return str(url.copy_with(query=None, fragment=None))
