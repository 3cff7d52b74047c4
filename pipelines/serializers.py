"""Request and response shapes of the pipelines API (input validation only; no workflow)."""

from __future__ import annotations

from rest_framework import serializers

from feedbackloop.api_fields import StrictCharField


class PipelineDeclareSerializer(serializers.Serializer):
    name = StrictCharField(max_length=200)
    description = StrictCharField(blank_ok=True, required=False, default="", max_length=10_000)
    parameters = serializers.JSONField(
        help_text="a JSON Schema (draft 2020-12) object schema: each property a parameter with "
        "type, bounds, default, description and the x-tunable, x-scale, x-step, x-affects and "
        "x-cost annotations (docs/pipelines.md)"
    )


class SchemaVersionSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    created_by = serializers.CharField()
    parameters = serializers.JSONField()


class RevisionBriefSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    schema_version = serializers.IntegerField(source="schema_version.number")
    params = serializers.JSONField()


class PipelineSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    runs_on = serializers.CharField(
        help_text='"server" (rendered by the site\'s workers) or "remote" (workers on the API)'
    )
    registered_by = serializers.CharField()
    schema_version = serializers.IntegerField(allow_null=True)
    parameters = serializers.JSONField(allow_null=True)
    active_revision = RevisionBriefSerializer(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class ConfigSerializer(serializers.Serializer):
    pipeline = serializers.CharField(help_text="the pipeline's slug")
    revision = serializers.IntegerField(help_text="the revision number within the pipeline")
    schema_version = serializers.IntegerField()
    params = serializers.DictField(help_text="the resolved generator parameters")
    experiment_arm = serializers.CharField(help_text='"" outside experiments')
    etag = serializers.CharField(help_text="the same value as the ETag header")
