"""Staff API: streamed exports, and imports of videos made elsewhere."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedbackloop.api_errors import LimitedJSONParser
from feedbackloop.api_fields import StrictCharField, errors
from feedbackloop.errors import InvalidInput
from feedbackloop.roles import ADMIN, acting_user, allow
from integrations.exports import FILTERS, FORMATS, KINDS, export_check, export_filters
from integrations.exports.http import export_response
from integrations.imports import ImportResult, ManifestRow, manifest_import, manifest_rows

STAFF_ONLY = allow(ADMIN)


class ExportApi(APIView):
    permission_classes = [STAFF_ONLY]

    def perform_content_negotiation(self, request: Request, force: bool = False) -> Any:
        # ?format= names the export's format here, not a DRF renderer; errors are JSON.
        renderer = JSONRenderer()
        return renderer, renderer.media_type

    @extend_schema(
        operation_id="exports_retrieve",
        summary="Stream an export of the feedback (staff)",
        description="`kind` is one of "
        + ", ".join(KINDS)
        + "; `format` one of "
        + ", ".join(FORMATS)
        + ". Filters: "
        + ", ".join(FILTERS)
        + " (since/until: a date or an ISO time; until excludes, a plain date includes that "
        "day). An unknown kind, format or filter is an error that lists the valid ones. The "
        "body streams as it is written (JSON Lines, or Parquet by row groups). Columns: "
        "docs/export.md.",
        parameters=[
            OpenApiParameter("format", OpenApiTypes.STR, enum=list(FORMATS), default="jsonl"),
            OpenApiParameter("pipeline", OpenApiTypes.STR),
            OpenApiParameter("revision", OpenApiTypes.INT),
            OpenApiParameter("since", OpenApiTypes.STR),
            OpenApiParameter("until", OpenApiTypes.STR),
        ],
        responses={
            (200, "application/x-ndjson"): OpenApiResponse(OpenApiTypes.BINARY),
            (200, "application/vnd.apache.parquet"): OpenApiResponse(OpenApiTypes.BINARY),
            **errors(400, 404),
        },
    )
    def get(self, request: Request, kind: str) -> StreamingHttpResponse:
        query = request.query_params.dict()
        fmt = query.pop("format", "jsonl")
        export_check(kind=kind, fmt=fmt)
        filters = export_filters(**query)
        label = filters.pipelines[0].slug if filters.pipelines else "feedback"
        return export_response(kind=kind, fmt=fmt, filters=filters, label=label)


class ImportRequestSerializer(serializers.Serializer):
    entries = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text="the rows, each {source | path | url, prompt, pipeline, params?}; their line "
        "numbers count from 1",
    )
    manifest = StrictCharField(required=False, help_text="a CSV or JSONL manifest as text")
    format = serializers.ChoiceField(choices=["csv", "jsonl"], required=False)


class ImportResultSerializer(serializers.Serializer):
    line = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["imported", "duplicate", "error"])
    message = serializers.CharField()
    generation_id = serializers.UUIDField(allow_null=True)
    source = serializers.CharField()


class ImportResponseSerializer(serializers.Serializer):
    imported = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    errors = serializers.IntegerField()
    results = ImportResultSerializer(many=True)


class ImportApi(APIView):
    permission_classes = [STAFF_ONLY]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="imports_create",
        summary="Import videos made elsewhere as generations ready for review (staff)",
        description="Give `entries` (objects: source/path/url, prompt, pipeline, params) or a "
        "`manifest` (CSV or JSONL text). Each row imports on its own: the answer lists every "
        "row's line number and outcome (imported, duplicate, error with the reason). Paths must "
        "be absolute and under IMPORT_ALLOWED_ROOTS; URLs must be https. At most "
        "IMPORT_API_MAX_ENTRIES rows per request; use `manage.py import_videos` for more.",
        request=ImportRequestSerializer,
        responses={200: ImportResponseSerializer, **errors(400, 413, 415)},
    )
    def post(self, request: Request) -> Response:
        serializer = ImportRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if ("entries" in data) == ("manifest" in data):
            raise InvalidInput("give either entries or manifest", code="invalid_manifest")
        rows: list[ManifestRow | ImportResult]
        if "entries" in data:
            rows = [ManifestRow(i, dict(e)) for i, e in enumerate(data["entries"], start=1)]
        else:
            rows = list(manifest_rows(data["manifest"], fmt=data.get("format")))
        limit = settings.IMPORT_API_MAX_ENTRIES
        if len(rows) > limit:
            raise InvalidInput(
                f"{len(rows)} rows; the API takes at most {limit} (IMPORT_API_MAX_ENTRIES): "
                "use manage.py import_videos",
                code="too_many_entries",
            )
        results = [
            r.as_dict() for r in manifest_import(rows=rows, requested_by=acting_user(request))
        ]
        body = {
            "imported": sum(r["status"] == "imported" for r in results),
            "duplicates": sum(r["status"] == "duplicate" for r in results),
            "errors": sum(r["status"] == "error" for r in results),
            "results": results,
        }
        return Response(ImportResponseSerializer(body).data)
