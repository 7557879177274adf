"""The receiver's OpenAPI description, served at /openapi.json."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "string"}},
    "required": ["error"],
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


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
                        {
                            "name": "export_id",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "token",
                            "in": "path",
                            "required": True,
                            "schema": {"type": "string"},
                        },
                    ],
                    "requestBody": {
                        "required": False,
                        "content": {
                            "application/json": {"schema": {}},
                            "application/octet-stream": {
                                "schema": {"type": "string", "format": "binary"}
                            },
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
                    "responses": {"200": _json({"type": "object"}, "Alive")},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Ledger and object store reachable, API key not rejected",
                    "operationId": "readyz",
                    "responses": {
                        "200": _json({"type": "object"}, "Ready"),
                        "503": _json({"type": "object"}, "Not ready, with the reasons"),
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics",
                    "operationId": "metrics",
                    "responses": {"200": {"description": "Text format", "content": text}},
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
