"""The receiver's OpenAPI description, served at /openapi.json.

Kept in step with `receiver.app` and `receiver.intake`: the path parameter patterns are the ones
intake checks (anything else is the same 404 as an unknown export), and a callback body may be
any bytes, since what the platform sends is not documented and every body is stored raw.
"""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error"],
}


_STATUS = {
    "type": "object",
    "properties": {"status": {"type": "string"}},
    "required": ["status"],
}
_REASONS = {"type": "array", "items": {"type": "string"}}
_READY = {
    "type": "object",
    "properties": {"status": {"type": "string", "enum": ["ready"]}, "warnings": _REASONS},
    "required": ["status"],
}
_NOT_READY = {
    "type": "object",
    "properties": {
        "status": {"type": "string", "enum": ["not_ready"]},
        "problems": _REASONS,
        "warnings": _REASONS,
    },
    "required": ["status", "problems"],
}
_BINARY = {"schema": {"type": "string", "format": "binary"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _path_parameter(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


def openapi_document(version: str) -> dict[str, Any]:
    text = {"text/plain": {"schema": {"type": "string"}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "chat-archiver receiver", "version": version},
        "paths": {
            "/callbacks/{export_id}/{token}": {
                "post": {
                    "summary": "Receive an export callback",
                    "description": "The raw body and its headers are stored before the answer. "
                    "Unknown export id and wrong token get the same 404.",
                    "operationId": "receiveCallback",
                    "parameters": [
                        _path_parameter(
                            "export_id",
                            "^[0-9a-f]{32}$",
                            "The export id the callback URL was issued for.",
                        ),
                        _path_parameter(
                            "token",
                            "^[A-Za-z0-9_-]{16,128}$",
                            "The export's secret token (32 random bytes, url-safe base64).",
                        ),
                    ],
                    "requestBody": {
                        "required": False,
                        "description": "Whatever the platform sends: a notice with a link or "
                        "a failure, or the export file itself (JSON, NDJSON, CSV, maybe gzip or "
                        "zip). Stored as received, up to ARCHIVER_MAX_CALLBACK_BYTES.",
                        "content": {
                            "application/json": {"schema": {}},
                            "application/x-ndjson": _BINARY,
                            "text/csv": _BINARY,
                            "application/gzip": _BINARY,
                            "application/zip": _BINARY,
                            "application/octet-stream": _BINARY,
                        },
                    },
                    "responses": {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "status": {"type": "string", "enum": ["accepted", "duplicate"]}
                                },
                                "required": ["status"],
                            },
                            "Stored",
                        ),
                        "404": _json(_ERROR, "Unknown export or wrong token"),
                        "408": _json(_ERROR, "The body did not arrive in time"),
                        "413": _json(_ERROR, "Body over ARCHIVER_MAX_CALLBACK_BYTES"),
                        "503": _json(_ERROR, "Could not store the body; retry"),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "summary": "The process is alive",
                    "operationId": "healthz",
                    "responses": {"200": _json(_STATUS, "Alive")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "This replica can take callbacks: ledger and object store "
                    "answer within 2 s",
                    "description": "A rejected API key is a warning, not a problem: callbacks "
                    "of exports already requested need no key.",
                    "operationId": "readyz",
                    "responses": {
                        "200": _json(_READY, "Ready (with warnings, if any)"),
                        "503": _json(_NOT_READY, "Not ready, with the reasons"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {
                        "200": {"description": "Text format", "content": text},
                        "503": _json(_ERROR, "Metrics could not be rendered in time"),
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {"200": _json({"type": "object"}, "OpenAPI 3")},
                }
            },
        },
    }
