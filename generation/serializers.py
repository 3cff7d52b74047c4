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
from feedbackloop.api_fields import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)
from feedbackloop.roles import REVIEWER, role_of
from generation.models import Generation
from generation.selectors import generation_metrics

# --- generations and jobs ---------------------------------------------------------------------


class LeaseSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()
    lease_expires_at = serializers.DateTimeField()


PIPELINE_SLUG = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,63}\Z", "a pipeline slug: lowercase letters, digits, '-' and '_'"
)


class GenerationSerializer(serializers.ModelSerializer):
    pipeline = serializers.CharField(source="revision.pipeline.slug", read_only=True)
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
            "pipeline",
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

    # What would tell a reviewer which configuration or experiment arm made a video: reviews
    # and comparisons are blind, so reviewers get the rest only; staff and workers see all.
    BLIND_FIELDS = ("pipeline", "revision", "params", "experiment_arm", "backend", "claimed_by")

    def to_representation(self, instance: Generation) -> dict[str, Any]:
        data = super().to_representation(instance)
        request = self.context.get("request")
        if request is not None and role_of(request.user) == REVIEWER:
            for key in self.BLIND_FIELDS:
                data.pop(key, None)
        return data

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
    pipeline = StrictCharField(
        required=False,
        max_length=64,
        validators=[PIPELINE_SLUG],
        help_text="the pipeline's slug (default: the site's default pipeline)",
    )
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
    pipeline = StrictCharField(required=False, max_length=64, validators=[PIPELINE_SLUG])
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
    pipelines = serializers.ListField(
        child=StrictCharField(max_length=64, validators=[PIPELINE_SLUG]),
        required=False,
        allow_empty=False,
        min_length=1,  # allow_empty alone does not reach the schema (minItems)
        max_length=50,
        help_text="the pipelines to take a job of (default: all your token may serve)",
    )
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


class JobCompleteKeysSerializer(serializers.Serializer):
    """Complete a job whose files were PUT to object storage with upload-url's URLs."""

    lease_id = serializers.UUIDField()
    video_key = StrictCharField(max_length=255, help_text="the video's key from upload-url")
    poster_key = StrictCharField(
        max_length=255, required=False, help_text="the poster's key, if one was uploaded"
    )
    script = serializers.DictField(
        required=False, help_text="the on-screen text the video was meant to show"
    )
    generation_seconds = StrictFloatField(required=False, min_value=0)
    cpu_seconds = StrictFloatField(required=False, min_value=0)
    peak_rss_bytes = StrictIntegerField(required=False, min_value=0, max_value=2**62)


class JobUploadUrlRequestSerializer(serializers.Serializer):
    lease_id = serializers.UUIDField()


class UploadTargetSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="give it back to complete as video_key / poster_key")
    url = serializers.URLField(help_text="PUT the file's bytes here (no other headers needed)")
    method = serializers.CharField()


class JobUploadUrlSerializer(serializers.Serializer):
    video = UploadTargetSerializer()
    poster = UploadTargetSerializer()
    expires_in = serializers.IntegerField(help_text="seconds the URLs stay valid")
    max_video_bytes = serializers.IntegerField()
    max_poster_bytes = serializers.IntegerField()


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
