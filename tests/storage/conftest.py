from __future__ import annotations

from pathlib import Path

import pytest

from storage.objectstore import ObjectStore
from storage.stores import S3Options, open_store


@pytest.fixture
def local_store(tmp_path: Path) -> ObjectStore:
    return open_store(f"file://{tmp_path}/archive")


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    """The same tests against a local directory and against S3 (moto on loopback)."""
    if request.param == "file":
        return open_store(f"file://{tmp_path}/archive")
    bucket = request.getfixturevalue("s3_bucket")
    endpoint = request.getfixturevalue("s3_endpoint")
    return open_store(f"s3://{bucket}/prefix", S3Options(endpoint_url=endpoint))
