"""Under /api/, no error leaves as HTML: whatever fails, the answer is the API's JSON error body.

DRF views already answer their own errors in that format (feedbackloop.api_errors). This
middleware covers the rest, whatever DEBUG says:

* failures Django raises before a view runs: a Host header the site does not serve (400) and a
  body over DATA_UPLOAD_MAX_MEMORY_SIZE (413) are refused up front, in JSON;
* exceptions a view lets through (a bug: 500; Http404, PermissionDenied, oversized or
  malformed bodies: their 4xx), logged and signalled as Django itself would;
* any other error response that is not JSON (Django's debug pages, a middleware's failure, the
  browsable API's HTML rendering of an error) is rewritten as the JSON body for its status,
  keeping its headers (Allow, WWW-Authenticate, Retry-After, security headers).

Paths outside /api/ pass through untouched: people get the site's HTML error pages.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.exceptions import (
    BadRequest,
    DisallowedHost,
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.utils.log import log_response

from feedbackloop.api_errors import error_body

API_PREFIX = "/api/"

# The codes the API documents for these statuses (docs/api.md); others get their HTTP phrase.
STATUS_CODES = {
    400: "bad_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "throttled",
    500: "server_error",
}
# Headers that describe the old body, not the answer: the JSON response sets its own.
BODY_HEADERS = {"content-type", "content-length", "content-encoding", "content-language"}


def _code_for(status: int) -> str:
    if status in STATUS_CODES:
        return STATUS_CODES[status]
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _message_for(status: int) -> str:
    if status == 500:
        return "the server failed to answer this request; the error is in the server's log"
    try:
        return HTTPStatus(status).phrase.lower()
    except ValueError:
        return "the request failed"


def _is_error_body(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("error"), dict)


def _is_json(response: HttpResponse) -> bool:
    return response.get("Content-Type", "").split(";")[0].strip() == "application/json"


class ApiJsonErrorsMiddleware:
    """Put first in MIDDLEWARE, so that it sees what every other layer answers."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        refused = self._refuse_before_django(request)
        if refused is not None:
            return refused
        return self._as_json(self.get_response(request))

    # --- failures Django would raise in its own middleware --------------------------------

    def _refuse_before_django(self, request: HttpRequest) -> HttpResponse | None:
        try:
            request.get_host()
        except DisallowedHost as exc:
            return self._suspicious(
                request, exc, 400, "the Host header names a host this site does not serve"
            )
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        content_type = request.META.get("CONTENT_TYPE", "")
        if limit is not None and not content_type.startswith("multipart/form-data"):
            # Django refuses such a body (RequestDataTooBig) when it is read; refuse it in
            # JSON before any layer reads it. Multipart uploads stream files to disk and are
            # limited per form field instead.
            try:
                length = int(request.META.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return self._answer(400, "bad_request", "Content-Length is not a number")
            if length > limit:
                exc = RequestDataTooBig(
                    f"the request body is {length} bytes; the limit is {limit} bytes"
                )
                return self._suspicious(request, exc, 413, str(exc))
        return None

    # --- exceptions a view let through ---------------------------------------------------

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not request.path_info.startswith(API_PREFIX):
            return None
        if isinstance(exc, Http404):
            return self._answer(404, "not_found", f"nothing at {request.path}")
        if isinstance(exc, PermissionDenied):
            return self._answer(403, "permission_denied", str(exc) or "permission denied")
        if isinstance(exc, RequestDataTooBig):
            return self._suspicious(request, exc, 413, "the request body is too large")
        if isinstance(exc, (SuspiciousOperation, BadRequest, MultiPartParserError)):
            return self._suspicious(request, exc, 400, str(exc) or "malformed request")
        # A bug. Tell the same listeners Django tells (error reporting, the test client) and
        # log it as Django would, then answer in JSON, DEBUG or not.
        signals.got_request_exception.send(sender=None, request=request)
        details = {"exception": f"{type(exc).__name__}: {exc}"} if settings.DEBUG else {}
        response = self._answer(500, "server_error", _message_for(500), details)
        log_response(
            "%s: %s",
            response.reason_phrase,
            request.path,
            response=response,
            request=request,
            exception=exc,
        )
        return response

    # --- error responses made elsewhere --------------------------------------------------

    def _as_json(self, response: HttpResponse) -> HttpResponse:
        if response.status_code < 400 or _is_json(response):
            return response
        data = getattr(response, "data", None)  # a DRF response rendered as HTML
        body = data if _is_error_body(data) else None
        status = response.status_code
        answer = JsonResponse(
            body or error_body(_code_for(status), _message_for(status)), status=status
        )
        for header, value in response.items():
            if header.lower() not in BODY_HEADERS:
                answer[header] = value
        answer.cookies = response.cookies
        return answer

    @staticmethod
    def _answer(status: int, code: str, message: str, details: Any = None) -> JsonResponse:
        return JsonResponse(error_body(code, message, details), status=status)

    def _suspicious(
        self, request: HttpRequest, exc: SuspiciousOperation | Exception, status: int, message: str
    ) -> JsonResponse:
        response = self._answer(status, _code_for(status), message)
        if isinstance(exc, SuspiciousOperation):
            # As Django does: the security logger hears of every SuspiciousOperation.
            log_response(
                str(exc),
                exception=exc,
                request=request,
                response=response,
                level="error",
                logger=logging.getLogger(f"django.security.{type(exc).__name__}"),
            )
        return response
