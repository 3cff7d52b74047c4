"""Request and response shapes of the worker API (validation of input only; no workflow)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.validators import RegexValidator
from django.urls import NoReverseMatch, reverse
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from feedbackloop.api_errors import RequestTooLarge
from generation.models import Generation
from generation.selectors import generation_metrics

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


# --- errors (for the schema; the body is built by feedbackloop.api_errors) ------------------


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="machine-readable, e.g. lease_expired")
    message = serializers.CharField(help_text="for humans")
    details = serializers.JSONField(help_text="per-field messages for validation errors")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()


# --- config ---------------------------------------------------------------------------------


class ConfigSerializer(serializers.Serializer):
    revision = serializers.IntegerField(help_text="the revision number")
    params = serializers.DictField(help_text="the resolved generator parameters")
    model_variant = serializers.CharField()
    experiment_arm = serializers.CharField(help_text='"" outside experiments')
    etag = serializers.CharField(help_text="the same value as the ETag header")


# --- generations and jobs ---------------------------------------------------------------------


class LeaseSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    lease_expires_at = serializers.DateTimeField()


class GenerationSerializer(serializers.ModelSerializer):
    revision = serializers.IntegerField(source="revision.number", read_only=True)
    claimed_by = serializers.SerializerMethodField(
        help_text="the worker holding or last holding it"
    )
    video_url = serializers.SerializerMethodField()
    poster_url = serializers.SerializerMethodField()
    lease = serializers.SerializerMethodField(
        help_text="your lease on this job; null unless your worker token holds it"
    )

    class Meta:
        model = Generation
        fields = [
            "id",
            "prompt",
            "status",
            "backend",
            "revision",
            "params",
            "experiment_arm",
            "progress",
            "attempts",
            "error",
            "video_url",
            "poster_url",
            "duration_s",
            "fps",
            "width",
            "height",
            "codec",
            "size_bytes",
            "generation_seconds",
            "cpu_seconds",
            "peak_rss_bytes",
            "claimed_by",
            "lease",
            "queued_at",
            "started_at",
            "finished_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def _url(self, name: str, obj: Generation) -> str | None:
        request = self.context.get("request")
        try:
            path = reverse(name, kwargs={"generation_id": obj.id})
        except NoReverseMatch:
            return None
        return request.build_absolute_uri(path) if request is not None else path

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_claimed_by(self, obj: Generation) -> str | None:
        return obj.claimed_by.name if obj.claimed_by_id else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_video_url(self, obj: Generation) -> str | None:
        return self._url("generation:video", obj) if obj.video else None

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_poster_url(self, obj: Generation) -> str | None:
        return self._url("generation:poster", obj) if obj.poster else None

    @extend_schema_field(LeaseSerializer(allow_null=True))
    def get_lease(self, obj: Generation) -> dict[str, Any] | None:
        worker = self.context.get("worker")
        if (
            worker is None
            or obj.claimed_by_id != worker.pk
            or obj.status != Generation.Status.RUNNING
            or obj.lease_id is None
        ):
            return None
        return LeaseSerializer(
            {"lease_id": obj.lease_id, "lease_expires_at": obj.lease_expires_at}
        ).data


class GenerationDetailSerializer(GenerationSerializer):
    script = serializers.JSONField(read_only=True, allow_null=True)
    metrics = serializers.SerializerMethodField(
        help_text='metric values by source: {"server": {name: value}, "worker": {…}}'
    )

    class Meta(GenerationSerializer.Meta):
        fields = [*GenerationSerializer.Meta.fields, "script", "metrics"]
        read_only_fields = fields

    @extend_schema_field(
        {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "additionalProperties": {"type": "number", "nullable": True},
            },
        }
    )
    def get_metrics(self, obj: Generation) -> dict[str, dict[str, Any]]:
        return generation_metrics(generation=obj)


class GenerationCreateSerializer(serializers.Serializer):
    prompt = StrictCharField(max_length=settings.MAX_PROMPT_LENGTH)
    backend = StrictCharField(
        default="remote",
        max_length=64,
        validators=[RegexValidator(r"^[A-Za-z0-9_.:-]{1,64}\Z", "letters, digits and _.:- only")],
        help_text='"remote" (default) queues a job for workers; "builtin" renders on the server',
    )
    claim = StrictBooleanField(
        default=False, help_text="lease the new job to the calling worker at once"
    )
    lease_seconds = StrictIntegerField(
        required=False, min_value=10, max_value=settings.API_JOB_LEASE_MAX_SECONDS
    )


class GenerationFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=Generation.Status.choices, required=False)
    revision = serializers.IntegerField(
        required=False, min_value=1, max_value=2**31 - 1, help_text="revision number"
    )
    backend = StrictCharField(required=False, max_length=64)
    created_after = serializers.DateTimeField(
        required=False,
        input_formats=["iso-8601", "%Y-%m-%d"],
        help_text="ISO 8601 date-time or YYYY-MM-DD (inclusive)",
    )
    created_before = serializers.DateTimeField(
        required=False,
        input_formats=["iso-8601", "%Y-%m-%d"],
        help_text="ISO 8601 date-time or YYYY-MM-DD (exclusive)",
    )
    q = StrictCharField(required=False, max_length=200, help_text="text in the prompt")


class JobClaimSerializer(serializers.Serializer):
    lease_seconds = StrictIntegerField(
        required=False,
        min_value=10,
        max_value=settings.API_JOB_LEASE_MAX_SECONDS,
        help_text="lease length in seconds (default API_JOB_LEASE_SECONDS)",
    )


class JobHeartbeatSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    lease_seconds = StrictIntegerField(
        required=False, min_value=10, max_value=settings.API_JOB_LEASE_MAX_SECONDS
    )
    progress = StrictFloatField(required=False, min_value=0.0, max_value=1.0)


class JobFailSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    error = StrictCharField(max_length=5000)
    requeue = StrictBooleanField(
        default=False, help_text="put the job back in the queue instead of failing it"
    )


class JobCompleteSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    video = serializers.FileField(help_text="the video (MP4/WebM); opened as a video to check it")
    poster = serializers.FileField(required=False, help_text="a JPEG, PNG or WebP still")
    script = StrictCharField(
        required=False, help_text="JSON object: the on-screen text the video was meant to show"
    )
    generation_seconds = serializers.FloatField(required=False, min_value=0)
    cpu_seconds = serializers.FloatField(required=False, min_value=0)
    peak_rss_bytes = serializers.IntegerField(required=False, min_value=0, max_value=2**62)

    def validate_video(self, video: Any) -> Any:
        limit = settings.API_MAX_UPLOAD_BYTES
        if video.size > limit:
            raise RequestTooLarge(f"the video is {video.size} bytes; the limit is {limit} bytes")
        if video.size == 0:
            raise serializers.ValidationError("the video file is empty")
        return video

    def validate_poster(self, poster: Any) -> Any:
        if poster.size > 20 * 1024 * 1024:
            raise RequestTooLarge("the poster is larger than 20 MB")
        return poster

    def validate_script(self, script: str) -> dict[str, Any]:
        try:
            value = json.loads(script)
        except (ValueError, RecursionError) as exc:
            raise serializers.ValidationError("script must be a JSON object") from exc
        if not isinstance(value, dict):
            raise serializers.ValidationError("script must be a JSON object")
        return value


class MetricsUploadSerializer(serializers.Serializer):
    metrics = serializers.DictField(
        child=StrictFloatField(),
        allow_empty=False,
        help_text="metric name → number; stored with source=worker",
    )
    version = StrictIntegerField(default=1, min_value=1, max_value=2**31 - 1)

    def validate_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        if len(metrics) > 200:
            raise serializers.ValidationError("at most 200 metrics per post")
        for name in metrics:
            if not name or len(name) > 64 or not name.isprintable():
                raise serializers.ValidationError(
                    f"metric name {name[:70]!r} must be 1-64 printable characters"
                )
        return metrics


class MetricsStoredSerializer(serializers.Serializer):
    generation = serializers.UUIDField()
    source = serializers.CharField()
    version = serializers.IntegerField()
    metrics = serializers.DictField(child=serializers.FloatField())
