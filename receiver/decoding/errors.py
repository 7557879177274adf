"""The decoders' exceptions: a payload that cannot be decoded is quarantined, never dropped."""

from __future__ import annotations

from storage.errors import PermanentError


class DecodeError(PermanentError):
    """The payload cannot be decoded; the message says why, without quoting message content."""


class UnrecognisedPayload(DecodeError):
    """The payload is none of the supported notices or file formats."""
