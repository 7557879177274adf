"""The upstream API's error answers: one exception type, rendered in the documented shape.

Bodies look like `{"code", "message", "name", "cta": {"type", "url"}, "feedback": {"enUs",
"esEs", "ptBr"}}`; `feedback` is the text a person sees, in each of the platform's locales.
"""

from __future__ import annotations

import math
from typing import Any

from starlette.responses import JSONResponse

PERIOD_TOO_LONG = "The export period exceeds the maximum of 6 months."

_NAMES = {
    400: ("BAD_REQUEST", "BadRequestError"),
    401: ("UNAUTHORIZED", "UnauthorizedError"),
    404: ("NOT_FOUND", "NotFoundError"),
    429: ("TOO_MANY_REQUESTS", "TooManyRequestsError"),
    500: ("INTERNAL_SERVER_ERROR", "InternalServerError"),
    502: ("BAD_GATEWAY", "BadGatewayError"),
    503: ("SERVICE_UNAVAILABLE", "ServiceUnavailableError"),
    504: ("GATEWAY_TIMEOUT", "GatewayTimeoutError"),
}

_FEEDBACK: dict[str, dict[str, str]] = {
    "invalid": {
        "enUs": "The request is invalid. Check the fields and try again.",
        "esEs": "La solicitud no es válida. Revisa los campos e inténtalo de nuevo.",
        "ptBr": "A requisição é inválida. Verifique os campos e tente novamente.",
    },
    "period": {
        "enUs": PERIOD_TOO_LONG,
        "esEs": "El período de exportación supera el máximo de 6 meses.",
        "ptBr": "O período de exportação excede o máximo de 6 meses.",
    },
    "unauthorized": {
        "enUs": "Invalid API key.",
        "esEs": "Clave de API no válida.",
        "ptBr": "Chave de API inválida.",
    },
    "chat": {
        "enUs": "Chat not found.",
        "esEs": "Chat no encontrado.",
        "ptBr": "Chat não encontrado.",
    },
    "busy": {
        "enUs": "Too many requests. Try again later.",
        "esEs": "Demasiadas solicitudes. Inténtalo de nuevo más tarde.",
        "ptBr": "Muitas requisições. Tente novamente mais tarde.",
    },
    "broken": {
        "enUs": "Something went wrong. Try again later.",
        "esEs": "Algo salió mal. Inténtalo de nuevo más tarde.",
        "ptBr": "Algo deu errado. Tente novamente mais tarde.",
    },
}


class ApiError(Exception):
    """An error answer of the upstream API."""

    def __init__(
        self,
        status: int,
        message: str,
        feedback: str = "invalid",
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.feedback = feedback
        self.code = code or _NAMES.get(status, ("ERROR", "Error"))[0]
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        name = _NAMES.get(self.status, ("ERROR", "Error"))[1]
        cta_type = "link" if self.status == 401 else "none"
        cta_url = "/settings/api-keys" if self.status == 401 else None
        return {
            "code": self.code,
            "message": self.message,
            "name": name,
            "cta": {"type": cta_type, "url": cta_url},
            "feedback": dict(_FEEDBACK[self.feedback]),
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message)


def period_too_long() -> ApiError:
    return ApiError(400, PERIOD_TOO_LONG, feedback="period", code="EXPORT_PERIOD_TOO_LONG")


def unauthorized() -> ApiError:
    return ApiError(401, "Invalid API key.", feedback="unauthorized")


def chat_not_found() -> ApiError:
    return ApiError(404, "Chat not found.", feedback="chat")


def injected(status: int, retry_after: float | None) -> ApiError:
    """The answer of a `fail_export_requests` fault: a rate limit or a server error."""
    headers = {}
    if status in (429, 503) and retry_after is not None:
        headers["Retry-After"] = str(math.ceil(retry_after))
    if status == 429:
        return ApiError(status, "Too many requests.", feedback="busy", headers=headers)
    if status == 503:
        return ApiError(
            status, "Service temporarily unavailable.", feedback="broken", headers=headers
        )
    return ApiError(status, "Internal error.", feedback="broken", headers=headers)
