"""Callback decoders: what a callback body is, and the messages in an export file.

`classify` tells a link notice, a failure notice and an inline data file apart; `download`
(in `receiver.decoding.download`) fetches a linked file safely; `read_batches` turns a data file
into Arrow record batches named by the API's fields; `extra_column` folds a batch's unknown
fields into the archive's `extra` JSON column.
"""

from receiver.decoding.classify import classify
from receiver.decoding.download import (
    DownloadError,
    DownloadPolicy,
    DownloadRefused,
    DownloadTooLarge,
    LinkExpired,
    download,
)
from receiver.decoding.errors import DecodeError, UnrecognisedPayload
from receiver.decoding.notices import FailureNotice, InlineFile, LinkNotice
from receiver.decoding.reading import read_batches
from receiver.decoding.rows import JSON_TEXT_METADATA, KNOWN_FIELDS, extra_column, is_unknown

__all__ = [
    "JSON_TEXT_METADATA",
    "KNOWN_FIELDS",
    "DecodeError",
    "DownloadError",
    "DownloadPolicy",
    "DownloadRefused",
    "DownloadTooLarge",
    "FailureNotice",
    "InlineFile",
    "LinkExpired",
    "LinkNotice",
    "UnrecognisedPayload",
    "classify",
    "download",
    "extra_column",
    "is_unknown",
    "read_batches",
]
