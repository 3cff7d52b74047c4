"""The API's error boundary: every failure leaves as JSON with a code and a human message.

    {"error": {"code": "lease_expired", "message": "your lease on job … has expired",
               "details": {}}}

Domain errors map to HTTP here and nowhere else (InvalidInput 400, NotFound 404, Conflict
409); DRF's own exceptions keep their status (401, 403, 404, 405, 415, 429, …); bodies that are
too large are 413. The size-limited parsers live here because their whole job is to turn an
oversized body into that 413 before it is read.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.http import Http404, HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from feedbackloop.errors import Conflict, DomainError, Forbidden, InvalidInput, NotFound

DOMAIN_STATUS: list[tuple[type[DomainError], int]] = [
    (InvalidInput, status.HTTP_400_BAD_REQUEST),
    (NotFound, status.HTTP_404_NOT_FOUND),
    (Forbidden, status.HTTP_403_FORBIDDEN),
    (Conflict, status.HTTP_409_CONFLICT),
]


class RequestTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "the request body is too large"
    default_code = "too_large"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _first_message(detail: Any, prefix: str = "") -> str:
    """The first validation message, prefixed with the field it belongs to."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            field = key if key != "non_field_errors" else ""
            return _first_message(
                value, f"{prefix}.{field}" if prefix and field else field or prefix
            )
        return "invalid input"
    if isinstance(detail, list):
        return _first_message(detail[0], prefix) if detail else "invalid input"
    return f"{prefix}: {detail}" if prefix else str(detail)


def _code_of(exc: exceptions.APIException) -> str:
    codes = exc.get_codes()
    return codes if isinstance(codes, str) else exc.default_code


def domain_error_status(exc: DomainError) -> int:
    return next((s for cls, s in DOMAIN_STATUS if isinstance(exc, cls)), 400)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, DomainError):
        status_code = domain_error_status(exc)
        return Response(error_body(exc.code, exc.message, exc.details), status=status_code)
    if isinstance(exc, RequestDataTooBig):
        exc = RequestTooLarge(
            "a form field is larger than DATA_UPLOAD_MAX_MEMORY_SIZE; send large data as a file"
        )
    elif isinstance(exc, SuspiciousOperation):
        # Too many fields or files, a malformed multipart body, …: the client's fault.
        exc = exceptions.ParseError(str(exc) or "malformed request")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound("not found")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response  # a bug: let Django log it and answer 500
    if isinstance(exc, exceptions.ValidationError):
        response.data = error_body("invalid", _first_message(exc.detail), exc.detail)
    elif isinstance(exc, exceptions.Throttled):
        response.data = error_body(
            "throttled", str(exc.detail), {"retry_after": exc.wait and round(exc.wait, 1)}
        )
    else:
        response.data = error_body(_code_of(exc), str(exc.detail))
    return response


@csrf_exempt  # nothing to protect, and no CSRF check that reads (and refuses) the body first
def api_not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Unknown paths under /api/ answer in the API's error format, not Django's HTML page."""
    return JsonResponse(error_body("not_found", f"no API endpoint at {request.path}"), status=404)


def _check_content_length(parser_context: dict[str, Any] | None, limit: int) -> None:
    request = (parser_context or {}).get("request")
    if request is None:
        return
    raw = request.META.get("CONTENT_LENGTH") or "0"
    try:
        length = int(raw)
    except ValueError as exc:
        raise exceptions.ParseError("Content-Length is not a number") from exc
    if length > limit:
        raise RequestTooLarge(f"the request body is {length} bytes; the limit is {limit} bytes")


class LimitedJSONParser(JSONParser):
    """JSON bodies up to settings.API_MAX_JSON_BYTES; nesting too deep to parse is a 400."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        _check_content_length(parser_context, settings.API_MAX_JSON_BYTES)
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply") from exc


class LimitedMultiPartParser(MultiPartParser):
    """Multipart uploads up to settings.API_MAX_UPLOAD_BYTES (plus room for the form fields)."""

    FORM_OVERHEAD_BYTES = 1024 * 1024

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        _check_content_length(
            parser_context, settings.API_MAX_UPLOAD_BYTES + self.FORM_OVERHEAD_BYTES
        )
        try:
            return super().parse(stream, media_type, parser_context)
        except ValueError as exc:
            # Django's multipart parser raises bare ValueErrors for some malformed headers.
            raise exceptions.ParseError(f"Multipart form parse error - {exc}") from exc
