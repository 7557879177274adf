"""download() against a real HTTP server on loopback."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from receiver.decoding.download import (
    DownloadError,
    DownloadPolicy,
    DownloadRefused,
    DownloadTooLarge,
    LinkExpired,
    download,
)
from tests.servers import serve_in_thread

HITS: collections.Counter[str] = collections.Counter()


def payload(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


async def file(request: Request) -> Response:
    HITS[request.url.path] += 1
    return Response(payload(int(request.path_params["size"])), media_type="application/json")


async def stream(request: Request) -> Response:
    """A body of unannounced length (chunked), to test the cap while streaming."""
    HITS[request.url.path] += 1
    size = int(request.path_params["size"])

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, size, 1000):
            yield payload(size)[start : start + 1000]

    return StreamingResponse(chunks())


async def status(request: Request) -> Response:
    HITS[request.url.path] += 1
    return PlainTextResponse("no", status_code=int(request.path_params["code"]))


async def flaky(request: Request) -> Response:
    """500 on the first request for a key, 200 afterwards."""
    HITS[request.url.path] += 1
    if HITS[request.url.path] == 1:
        return PlainTextResponse("try later", status_code=500)
    return Response(payload(300))


async def redirect(request: Request) -> Response:
    HITS[request.url.path] += 1
    return RedirectResponse(request.query_params.get("to", str(request.url)), status_code=302)


async def host(request: Request) -> Response:
    return PlainTextResponse(request.headers["host"])


app = Starlette(
    routes=[
        Route("/file/{size:int}", file),
        Route("/stream/{size:int}", stream),
        Route("/status/{code:int}", status),
        Route("/flaky/{key}", flaky),
        Route("/redirect/{key}", redirect),
        Route("/host", host),
    ]
)

LOOPBACK = DownloadPolicy(allow_insecure=True, allow_private=True, backoff=0.01)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with serve_in_thread(app) as url:
        yield url


def test_downloads_the_file_and_reports_progress(server: str, tmp_path: Path) -> None:
    dest = tmp_path / "export"
    seen: list[int] = []

    written = download(f"{server}/file/5000", dest, LOOPBACK, progress=seen.append)

    assert written == 5000
    assert dest.read_bytes() == payload(5000)
    assert seen[-1] == 5000 and seen == sorted(seen)


def test_sends_the_links_host_name_while_connecting_to_a_checked_address(
    server: str, tmp_path: Path
) -> None:
    port = server.rsplit(":", 1)[1]
    dest = tmp_path / "host"

    download(f"http://localhost:{port}/host", dest, LOOPBACK)

    assert dest.read_text() == f"localhost:{port}"


@pytest.mark.parametrize(
    "url",
    [
        "{server}/file/10",
        "http://localhost:{port}/file/10",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:{port}/file/10",
        "http://[::ffff:127.0.0.1]:{port}/file/10",
        "http://0.0.0.0:{port}/file/10",
        "http://10.0.0.1/file",
        "http://224.0.0.1/file",
    ],
)
def test_refuses_private_loopback_and_metadata_addresses(
    server: str, tmp_path: Path, url: str
) -> None:
    before = sum(HITS.values())
    link = url.format(server=server, port=server.rsplit(":", 1)[1])

    with pytest.raises(DownloadRefused, match="private, loopback, link-local or reserved"):
        download(link, tmp_path / "x", DownloadPolicy(allow_insecure=True))

    assert sum(HITS.values()) == before
    assert not (tmp_path / "x").exists()


def test_refuses_http_links_unless_insecure_links_are_allowed(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadRefused, match="must be https"):
        download(f"{server}/file/10", tmp_path / "x", DownloadPolicy(allow_private=True))


@pytest.mark.parametrize(
    "url",
    ["ftp://example.com/x", "file:///etc/passwd", "https://user:pw@example.com/x", "nonsense"],
)
def test_refuses_other_schemes_credentials_and_non_urls(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadRefused):
        download(url, tmp_path / "x", LOOPBACK)


def test_follows_redirects_on_allowed_addresses(server: str, tmp_path: Path) -> None:
    written = download(f"{server}/redirect/ok?to=/file/700", tmp_path / "x", LOOPBACK)

    assert written == 700


@pytest.mark.parametrize(
    "target",
    ["http://169.254.169.254/latest/meta-data/", "http://127.0.0.2:{port}/file/10"],
)
def test_refuses_a_redirect_to_a_private_address(server: str, tmp_path: Path, target: str) -> None:
    only_the_first_hop = DownloadPolicy(allow_insecure=True, allowed_networks=("127.0.0.1/32",))
    location = target.format(port=server.rsplit(":", 1)[1])

    with pytest.raises(DownloadRefused, match="resolves to"):
        download(f"{server}/redirect/private?to={location}", tmp_path / "x", only_the_first_hop)


def test_refuses_a_redirect_to_another_scheme(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadRefused, match="only http"):
        download(f"{server}/redirect/ftp?to=ftp://127.0.0.1/x", tmp_path / "x", LOOPBACK)


def test_refuses_endless_redirects(server: str, tmp_path: Path) -> None:
    policy = DownloadPolicy(allow_insecure=True, allow_private=True, max_redirects=2)
    with pytest.raises(DownloadRefused, match="more than 2 redirects"):
        download(f"{server}/redirect/loop", tmp_path / "x", policy)


def test_refuses_a_file_announced_larger_than_the_cap(server: str, tmp_path: Path) -> None:
    policy = DownloadPolicy(allow_insecure=True, allow_private=True, max_bytes=1000)

    with pytest.raises(DownloadTooLarge, match="1000-byte limit"):
        download(f"{server}/file/5000", tmp_path / "x", policy)

    assert not (tmp_path / "x").exists()


def test_abandons_a_stream_growing_past_the_cap_and_removes_the_partial_file(
    server: str, tmp_path: Path
) -> None:
    policy = DownloadPolicy(allow_insecure=True, allow_private=True, max_bytes=2500)

    with pytest.raises(DownloadTooLarge, match="grew past the 2500-byte limit"):
        download(f"{server}/stream/10000", tmp_path / "x", policy)

    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("code", [403, 404, 410])
def test_expired_links_are_reported_without_retrying(
    server: str, tmp_path: Path, code: int
) -> None:
    before = HITS[f"/status/{code}"]

    with pytest.raises(LinkExpired, match=str(code)):
        download(f"{server}/status/{code}", tmp_path / "x", LOOPBACK)

    assert HITS[f"/status/{code}"] == before + 1


def test_retries_a_server_error_and_then_succeeds(server: str, tmp_path: Path) -> None:
    written = download(f"{server}/flaky/once", tmp_path / "x", LOOPBACK)

    assert written == 300
    assert HITS["/flaky/once"] == 2


def test_gives_up_after_the_retries_with_a_download_error(server: str, tmp_path: Path) -> None:
    policy = DownloadPolicy(allow_insecure=True, allow_private=True, retries=2, backoff=0.01)
    before = HITS["/status/503"]

    with pytest.raises(DownloadError, match="failed 3 times") as raised:
        download(f"{server}/status/503?signature=secret", tmp_path / "x", policy)

    assert not isinstance(raised.value, DownloadRefused | LinkExpired)
    assert HITS["/status/503"] == before + 3
    assert "secret" not in str(raised.value)


def test_an_unreachable_port_is_a_transient_error(tmp_path: Path) -> None:
    from tests.servers import free_port

    policy = DownloadPolicy(allow_insecure=True, allow_private=True, retries=1, backoff=0.01)

    with pytest.raises(DownloadError, match="cannot connect"):
        download(f"http://127.0.0.1:{free_port()}/x", tmp_path / "x", policy)
