"""S3 and S3-compatible stores (MinIO, Ceph, R2, ...) through boto3.

botocore's exceptions never leave this module: callers get StoreError with one line that
names the bucket, key or endpoint and what to check.

One client and one transfer manager per store, reused by every call (boto3 clients are
thread-safe and pool their connections). Files below the multipart threshold go up in one
`put_object`; only larger ones use the transfer manager's parallel parts.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import S3Transfer, TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
)

from storage.errors import ErrorKind
from storage.objectstore import ObjectInfo, ObjectNotFound, StoreError, check_key
from storage.stores.s3_options import S3Options

_MISSING_KEY_CODES = {"NoSuchKey", "404", "NotFound"}
_DENIED_CODES = {"AccessDenied", "403", "Forbidden", "AllAccessDisabled"}
_BAD_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken"}
_MULTIPART_CHUNK = 16 * 1024 * 1024
# Smaller files are read into memory for the upload: no `100-continue` round trip.
_IN_MEMORY_UPLOAD = 1024 * 1024
# Paths that must answer quickly (callback intake, /readyz): a stalled store is given up on in
# seconds, and the caller answers 503; the worker keeps the patient settings.
_FAST_CONNECT_TIMEOUT = 2
_FAST_READ_TIMEOUT = 5
_FAST_MAX_ATTEMPTS = 2
# Connections kept per client: enough for the intake lane and the transfer manager's threads.
_MAX_POOL_CONNECTIONS = 20


class S3Store:
    def __init__(
        self,
        bucket: str,
        prefix: str,
        options: S3Options,
        *,
        session: boto3.session.Session | None = None,
    ) -> None:
        if not bucket:
            raise StoreError("storage URL needs a bucket: s3://bucket/prefix", kind=ErrorKind.USER)
        self.bucket = bucket
        prefix = prefix.strip("/")
        self._root = f"{prefix}/" if prefix else ""
        self.description = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self._endpoint = _public_endpoint(options.endpoint_url)
        self._options = options
        config = Config(
            retries={"mode": options.retries_mode, "max_attempts": options.max_attempts},
            s3={"addressing_style": options.addressing_style},
            request_checksum_calculation=options.checksums,
            response_checksum_validation=options.checksums,
            connect_timeout=options.connect_timeout,
            read_timeout=options.read_timeout,
            max_pool_connections=_MAX_POOL_CONNECTIONS,
            tcp_keepalive=True,
        )
        # A session of its own: boto3 clients are thread-safe, the default session is not. The
        # fast-failing sibling shares it, and with it the parsed service model.
        self._session = session or boto3.session.Session()
        self._client: Any = self._session.client(
            "s3", endpoint_url=options.endpoint_url, config=config
        )
        self._extra: dict[str, str] = {}
        if options.sse:
            self._extra["ServerSideEncryption"] = options.sse
        if options.sse_kms_key_id:
            self._extra["SSEKMSKeyId"] = options.sse_kms_key_id
        self._transfer_config = TransferConfig(
            multipart_threshold=options.multipart_threshold,
            multipart_chunksize=max(_MULTIPART_CHUNK, options.multipart_threshold // 4),
        )
        self._transfer: S3Transfer | None = None

    def fast_failing(self) -> S3Store:
        """The same bucket and prefix with short timeouts and one retry, for callers that must
        answer within seconds whatever the store does."""
        options = replace(
            self._options,
            connect_timeout=_FAST_CONNECT_TIMEOUT,
            read_timeout=_FAST_READ_TIMEOUT,
            max_attempts=min(self._options.max_attempts, _FAST_MAX_ATTEMPTS),
        )
        return S3Store(self.bucket, self._root.rstrip("/"), options, session=self._session)

    def _transfers(self) -> S3Transfer:
        """The store's one transfer manager, made on first use (it starts threads)."""
        if self._transfer is None:
            self._transfer = S3Transfer(self._client, self._transfer_config)
        return self._transfer

    def put_bytes(self, key: str, data: bytes) -> None:
        with self._errors("write", key):
            self._client.put_object(
                Bucket=self.bucket, Key=self._full(key), Body=data, **self._extra
            )

    def put_file(self, key: str, path: Path) -> None:
        with self._errors("upload", key):
            size = path.stat().st_size
            if size >= self._transfer_config.multipart_threshold:
                self._transfers().upload_file(
                    str(path), self.bucket, self._full(key), extra_args=dict(self._extra)
                )
                return
            with path.open("rb") as source:
                body = source.read() if size <= _IN_MEMORY_UPLOAD else source
                self._client.put_object(
                    Bucket=self.bucket, Key=self._full(key), Body=body, **self._extra
                )

    def copy(self, source: str, key: str) -> None:
        # The managed copy: one CopyObject below the multipart threshold, a multipart copy
        # above it (CopyObject alone stops at 5 GB). The bytes never leave the store.
        with self._errors("read", source):
            self._client.copy(
                {"Bucket": self.bucket, "Key": self._full(source)},
                self.bucket,
                self._full(key),
                ExtraArgs=dict(self._extra) or None,
                Config=self._transfer_config,
            )

    def get_bytes(self, key: str) -> bytes:
        with self._errors("read", key):
            response = self._client.get_object(Bucket=self.bucket, Key=self._full(key))
            data: bytes = response["Body"].read()
            return data

    def download_file(self, key: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._errors("read", key):
            self._transfers().download_file(self.bucket, self._full(key), str(path))

    def size(self, key: str) -> int | None:
        try:
            with self._errors("read", key):
                response = self._client.head_object(Bucket=self.bucket, Key=self._full(key))
        except ObjectNotFound:
            return None
        return int(response["ContentLength"])

    def list(self, prefix: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors("list", prefix):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._root + prefix):
                for item in page.get("Contents", []):
                    yield ObjectInfo(item["Key"][len(self._root) :], int(item["Size"]))

    def delete(self, key: str) -> None:
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=self._full(key))

    def check_access(self) -> None:
        key = f"_check-{uuid.uuid4().hex}"
        self.put_bytes(key, b"probe")
        if self.get_bytes(key) != b"probe":
            raise StoreError(f"{self.description}: a probe object read back differently")
        self.delete(key)

    def _full(self, key: str) -> str:
        return self._root + check_key(key)

    def _url(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._root}{key}"

    @contextmanager
    def _errors(self, action: str, key: str) -> Iterator[None]:
        try:
            yield
        except ClientError as exc:
            raise self._client_error(action, key, exc) from exc
        except S3UploadFailedError as exc:
            if isinstance(exc.__context__, ClientError):
                raise self._client_error(action, key, exc.__context__) from exc
            raise StoreError(f"cannot {action} {self._url(key)}: {exc}") from exc
        except (EndpointConnectionError, ConnectTimeoutError) as exc:
            raise StoreError(
                f"cannot reach the S3 endpoint {self._endpoint} "
                f"(check ARCHIVER_S3_ENDPOINT_URL and the network): {exc}"
            ) from exc
        except (NoCredentialsError, PartialCredentialsError) as exc:
            raise StoreError(
                f"no usable AWS credentials for {self.description}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or an instance/pod role"
            ) from exc
        except BotoCoreError as exc:
            raise StoreError(f"cannot {action} {self._url(key)}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"cannot {action} {self._url(key)}: {exc.strerror or exc}") from exc

    def _client_error(self, action: str, key: str, exc: ClientError) -> StoreError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        if code == "NoSuchBucket":
            return StoreError(
                f"bucket {self.bucket!r} does not exist ({self.description})", kind=ErrorKind.USER
            )
        if code in _MISSING_KEY_CODES:
            return ObjectNotFound(f"no object {self._url(key)}")
        if code in _BAD_CREDENTIAL_CODES:
            return StoreError(
                f"the store at {self._endpoint} refused the credentials ({code}) while trying "
                f"to {action} {self._url(key)}: check the AWS access key and secret",
                kind=ErrorKind.USER,
            )
        if code in _DENIED_CODES:
            return StoreError(
                f"access denied: cannot {action} {self._url(key)} ({code}); check the "
                "credentials' permissions and the bucket policy",
                kind=ErrorKind.USER,
            )
        return StoreError(f"cannot {action} {self._url(key)}: {code or 'error'}: {message}")


def _public_endpoint(endpoint_url: str | None) -> str:
    """The endpoint for messages, without any user:password part."""
    if not endpoint_url:
        return "AWS S3"
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}" if parts.scheme else endpoint_url
