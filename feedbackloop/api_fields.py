"""Shared shapes of the REST API: strict JSON fields and the error body, for the schema.

Strict fields take JSON as sent (no "2" for 2, no 1 for true); the error body itself is built
by feedbackloop.api_errors, and ``errors()`` documents which error statuses an operation gives.
"""

from __future__ import annotations

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers

# Text the database can store has no NUL (DRF also refuses lone surrogates, which generated
# text never has). Non-blank text has a character that Python's str.strip() keeps: the class
# below is exactly the set str.isspace() accepts, so the schema's pattern and the server agree.
_SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
TEXT = RegexValidator(r"^[^\x00]*\Z", "NUL characters are not allowed")
NON_BLANK_TEXT = RegexValidator(
    rf"^[^\x00]*[^{_SPACE}\x00][^\x00]*\Z",
    "must contain a character other than white space, and no NUL",
)


class StrictCharField(serializers.CharField):
    """Text as sent: numbers are refused rather than turned into strings, nothing is trimmed
    (a service trims where it matters), and the schema states which strings are accepted."""

    def __init__(self, *, blank_ok: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("trim_whitespace", False)
        kwargs["allow_blank"] = blank_ok
        super().__init__(**kwargs)
        self.validators.append(TEXT if blank_ok else NON_BLANK_TEXT)

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """A JSON boolean: true or false, not 0, 1 or "yes"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class StrictIntegerField(serializers.IntegerField):
    """A JSON integer (2 or 2.0), not "2" or true."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        if isinstance(data, float) and not data.is_integer():
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    """A JSON number, not "2.5" or true."""

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("invalid")
        return super().to_internal_value(data)


# --- errors ------------------------------------------------------------------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable, e.g. lease_expired")
    message = serializers.CharField(help_text="for humans")
    details = serializers.JSONField(help_text="per-field messages for validation errors")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


ERROR_STATUSES = {
    400: "invalid input",
    401: "no or bad credentials",
    403: "the caller's role may not do this",
    404: "no such object",
    409: "the object's state does not allow this",
    413: "the body is too large",
    415: "unsupported Content-Type",
    429: "too many requests",
}


def errors(*codes: int) -> dict[int, OpenApiResponse]:
    """Schema entries for the error responses an operation can give (always 401/403/429)."""
    return {
        code: OpenApiResponse(ErrorSerializer, description=ERROR_STATUSES[code])
        for code in sorted({401, 403, 429, *codes})
    }
