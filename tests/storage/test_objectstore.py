from __future__ import annotations

import os
from pathlib import Path

import boto3
import pytest

from storage.objectstore import ObjectInfo, ObjectNotFound, ObjectStore, StoreError
from storage.stores import S3Options, open_store
from tests.servers import free_port


def test_put_get_size_and_delete(store: ObjectStore) -> None:
    store.put_bytes("a/b/c.txt", b"hello")
    assert store.get_bytes("a/b/c.txt") == b"hello"
    assert store.size("a/b/c.txt") == 5
    store.put_bytes("a/b/c.txt", b"replaced")
    assert store.get_bytes("a/b/c.txt") == b"replaced"
    store.delete("a/b/c.txt")
    assert store.size("a/b/c.txt") is None
    store.delete("a/b/c.txt")  # missing is fine


def test_missing_objects(store: ObjectStore, tmp_path: Path) -> None:
    assert store.size("nope/x") is None
    with pytest.raises(ObjectNotFound, match="nope/x"):
        store.get_bytes("nope/x")
    with pytest.raises(ObjectNotFound):
        store.download_file("nope/x", tmp_path / "x")


def test_list_is_sorted_relative_and_filtered_by_string_prefix(store: ObjectStore) -> None:
    for key in ["s/date=2024-01-02/p1", "s/date=2024-01-01/p2", "s/other", "t/x", "s/date=z"]:
        store.put_bytes(key, key.encode())
    assert list(store.list("s/date=")) == [
        ObjectInfo("s/date=2024-01-01/p2", 20),
        ObjectInfo("s/date=2024-01-02/p1", 20),
        ObjectInfo("s/date=z", 8),
    ]
    assert [info.key for info in store.list("")] == [
        "s/date=2024-01-01/p2",
        "s/date=2024-01-02/p1",
        "s/date=z",
        "s/other",
        "t/x",
    ]
    assert list(store.list("missing/")) == []


def test_put_file_and_download_file_round_trip(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(300_000))
    store.put_file("files/one.bin", source)
    target = tmp_path / "deep" / "target.bin"
    store.download_file("files/one.bin", target)
    assert target.read_bytes() == source.read_bytes()


def test_copy_replaces_the_target_whole_and_leaves_the_source(store: ObjectStore) -> None:
    store.put_bytes("staged/part.bin", b"new bytes")
    store.put_bytes("table/part.bin", b"old")
    store.copy("staged/part.bin", "table/part.bin")
    assert store.get_bytes("table/part.bin") == b"new bytes"
    store.delete("staged/part.bin")
    assert store.get_bytes("table/part.bin") == b"new bytes"
    with pytest.raises(ObjectNotFound, match=r"staged/part\.bin"):
        store.copy("staged/part.bin", "table/other.bin")


def test_check_access_leaves_nothing_behind(store: ObjectStore) -> None:
    store.check_access()
    assert list(store.list("")) == []


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../b", "a//b", "", "a/./b"])
def test_keys_that_could_escape_the_prefix_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(StoreError, match="not a plain relative path"):
        store.put_bytes(key, b"x")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "scheme 'ftp' is not supported"),
        ("bucket/prefix", "needs a scheme"),
        ("s3://", "needs a bucket"),
        ("file://", "has no path"),
    ],
)
def test_bad_storage_urls_say_what_is_wrong(url: str, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        open_store(url)


def test_relative_file_urls_resolve_against_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("file://./archive")
    store.put_bytes("k", b"v")
    assert (tmp_path / "archive" / "k").read_bytes() == b"v"
    assert store.description == f"file://{tmp_path / 'archive'}"


def test_local_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    store.put_bytes("d/k", b"1")
    source = tmp_path / "src"
    source.write_bytes(b"2")
    store.put_file("d/f", source)
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["f", "k"]


def test_local_listing_skips_interrupted_writes(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    store.put_bytes("d/k", b"1")
    (tmp_path / "d" / ".k.tmp-0123").write_bytes(b"partial")
    assert [info.key for info in store.list("d/")] == ["d/k"]


def test_s3_missing_bucket_is_one_clear_line(s3_endpoint: str) -> None:
    store = open_store("s3://no-such-bucket/p", S3Options(endpoint_url=s3_endpoint))
    with pytest.raises(StoreError) as caught:
        store.check_access()
    assert str(caught.value) == "bucket 'no-such-bucket' does not exist (s3://no-such-bucket/p)"
    with pytest.raises(StoreError, match="does not exist"):
        list(store.list(""))


def test_s3_unreachable_endpoint_names_the_endpoint() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = open_store("s3://bucket/p", S3Options(endpoint_url=endpoint, max_attempts=1))
    with pytest.raises(StoreError, match=f"cannot reach the S3 endpoint {endpoint}"):
        store.check_access()


def test_s3_prefix_is_prepended_and_hidden(s3_endpoint: str, s3_bucket: str) -> None:
    store = open_store(f"s3://{s3_bucket}/some/prefix/", S3Options(endpoint_url=s3_endpoint))
    assert store.description == f"s3://{s3_bucket}/some/prefix"
    store.put_bytes("k/v", b"1")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    listed = client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    assert [item["Key"] for item in listed] == ["some/prefix/k/v"]
    assert [info.key for info in store.list("k/")] == ["k/v"]


def test_s3_multipart_upload_with_encryption(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    options = S3Options(
        endpoint_url=s3_endpoint,
        sse="AES256",
        multipart_threshold=5 * 1024 * 1024,
        checksums="when_required",
        addressing_style="path",
    )
    store = open_store(f"s3://{s3_bucket}/p", options)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(6 * 1024 * 1024))
    store.put_file("big.bin", source)
    store.put_bytes("small", b"x")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    big = client.head_object(Bucket=s3_bucket, Key="p/big.bin")
    assert big["ContentLength"] == source.stat().st_size
    assert "-" in big["ETag"]  # a multipart upload's ETag
    assert big["ServerSideEncryption"] == "AES256"
    small = client.head_object(Bucket=s3_bucket, Key="p/small")
    assert small["ServerSideEncryption"] == "AES256"
    target = tmp_path / "back.bin"
    store.download_file("big.bin", target)
    assert target.read_bytes() == source.read_bytes()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"addressing_style": "sideways"}, "addressing_style"),
        ({"checksums": "always"}, "checksums"),
        ({"sse": "rot13"}, "sse"),
        ({"sse_kms_key_id": "k"}, "needs sse='aws:kms'"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"multipart_threshold": 1024}, "multipart_threshold"),
    ],
)
def test_s3_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(StoreError, match=message):
        S3Options(**options)  # type: ignore[arg-type]
