"""How to reach and write an S3 or S3-compatible store; plain data, importable without boto3."""

from __future__ import annotations

from dataclasses import dataclass

from storage.objectstore import StoreError


@dataclass(frozen=True)
class S3Options:
    endpoint_url: str | None = None
    addressing_style: str = "auto"  # auto|path|virtual
    sse: str | None = None  # None|"AES256"|"aws:kms"
    sse_kms_key_id: str | None = None
    # "when_required" for S3-compatible stores that reject the newer default checksum headers.
    checksums: str = "when_supported"
    multipart_threshold: int = 64 * 1024 * 1024
    retries_mode: str = "standard"  # standard|adaptive
    max_attempts: int = 8
    # Seconds; each bounds one socket wait (connect, or one read/write), not a whole transfer.
    connect_timeout: float = 10
    read_timeout: float = 120

    def __post_init__(self) -> None:
        choices = {
            "addressing_style": ("auto", "path", "virtual"),
            "checksums": ("when_supported", "when_required"),
            "retries_mode": ("standard", "adaptive", "legacy"),
        }
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise StoreError(f"S3 option {name}={value!r} is not one of {', '.join(allowed)}")
        if self.sse not in (None, "AES256", "aws:kms"):
            raise StoreError(f"S3 option sse={self.sse!r} is not one of AES256, aws:kms")
        if self.sse_kms_key_id and self.sse != "aws:kms":
            raise StoreError("S3 option sse_kms_key_id needs sse='aws:kms'")
        if self.max_attempts < 1:
            raise StoreError(f"S3 option max_attempts={self.max_attempts} must be at least 1")
        if self.multipart_threshold < 5 * 1024 * 1024:
            raise StoreError("S3 option multipart_threshold must be at least 5 MiB (S3's minimum)")
