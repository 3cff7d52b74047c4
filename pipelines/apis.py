"""The pipelines API: declare a pipeline, read pipelines, and the configuration to generate with.

PUT  /api/v1/pipelines/{slug}/          declare or update (a worker allowed that slug, or staff)
GET  /api/v1/pipelines/                 every pipeline (any role)
GET  /api/v1/pipelines/{slug}/          one pipeline with its schema and active revision
GET  /api/v1/pipelines/{slug}/config/   the configuration a new generation uses (ETag / 304)
GET  /api/v1/config/                    the same, for the default pipeline
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedbackloop.api_errors import LimitedJSONParser
from feedbackloop.api_fields import errors
from feedbackloop.errors import Forbidden, NotFound
from feedbackloop.roles import ADMIN, REVIEWER, WORKER, acting_worker, allow
from pipelines.models import Pipeline
from pipelines.selectors import (
    pipeline_default_slug,
    pipeline_get,
    pipeline_list,
    revision_active,
    revision_for_new_generation,
)
from pipelines.serializers import ConfigSerializer, PipelineDeclareSerializer, PipelineSerializer
from pipelines.services.registration import pipeline_register

ANY_ROLE = allow(WORKER, REVIEWER, ADMIN)


def pipeline_body(pipeline: Pipeline) -> dict[str, Any]:
    version = pipeline.versions.order_by("-number").first()
    active = revision_active(pipeline=pipeline)
    return PipelineSerializer(
        {
            "slug": pipeline.slug,
            "name": pipeline.name,
            "description": pipeline.description,
            "runs_on": "server" if pipeline.renderer else "remote",
            "registered_by": pipeline.registered_by,
            "schema_version": version.number if version else None,
            "parameters": version.parameters if version else None,
            "active_revision": active,
            "created_at": pipeline.created_at,
            "updated_at": pipeline.updated_at,
        }
    ).data


class PipelinesApi(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        operation_id="pipelines_list",
        summary="Every pipeline with its declared parameters and active revision",
        responses={200: PipelineSerializer(many=True), **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response([pipeline_body(p) for p in pipeline_list()])


class PipelineApi(APIView):
    parser_classes = [LimitedJSONParser]

    def get_permissions(self) -> list[Any]:
        if self.request.method == "PUT":
            return [allow(WORKER, ADMIN)()]
        return [ANY_ROLE()]

    @extend_schema(
        operation_id="pipelines_retrieve",
        summary="One pipeline with its declared parameters and active revision",
        responses={200: PipelineSerializer, **errors(404)},
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(pipeline_body(pipeline_get(slug=slug)))

    @extend_schema(
        operation_id="pipelines_declare",
        summary="Declare a pipeline, or update its declaration (idempotent)",
        description="The same body twice changes nothing (200). A new pipeline is 201, with "
        "revision 1 made from the declared defaults and active. A changed `parameters` makes "
        "a new schema version, unless the active revision would not be valid under it (400, "
        "naming each key). A worker token may declare only the slugs it may serve (403).",
        request=PipelineDeclareSerializer,
        responses={200: PipelineSerializer, 201: PipelineSerializer, **errors(400, 413, 415)},
    )
    def put(self, request: Request, slug: str) -> Response:
        worker = acting_worker(request)
        if worker is not None and not worker.may_serve(slug):
            raise Forbidden(
                f"worker {worker.name!r} may not declare pipeline {slug!r}; it may serve "
                f"{', '.join(worker.pipelines) or 'no pipeline'}",
                code="pipeline_not_allowed",
            )
        serializer = PipelineDeclareSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        who = f"worker:{worker.name}" if worker else f"user:{request.user.get_username()}"
        registration = pipeline_register(
            slug=slug,
            name=data["name"],
            description=data["description"],
            parameters=data["parameters"],
            registered_by=who,
        )
        code = status.HTTP_201_CREATED if registration.created else status.HTTP_200_OK
        return Response(pipeline_body(registration.pipeline), status=code)


def config_etag(pipeline: str, revision_number: int, params: dict[str, Any], arm: str) -> str:
    payload = json.dumps(
        [pipeline, revision_number, params, arm], sort_keys=True, separators=(",", ":")
    )
    return '"' + hashlib.sha256(payload.encode()).hexdigest()[:32] + '"'


def etag_matches(header: str, etag: str) -> bool:
    """If-None-Match uses weak comparison: W/"x" matches "x"; * matches anything."""
    candidates = [part.strip() for part in header.split(",")]
    return "*" in candidates or any(c.removeprefix("W/") == etag for c in candidates)


class PipelineConfigApi(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        operation_id="pipelines_config",
        summary="The configuration a new generation of this pipeline should use",
        description="Poll with If-None-Match: an unchanged configuration answers 304, no body. "
        "`/api/v1/config/` answers the same for the default pipeline.",
        parameters=[OpenApiParameter("If-None-Match", OpenApiTypes.STR, OpenApiParameter.HEADER)],
        responses={
            200: ConfigSerializer,
            304: OpenApiResponse(description="unchanged since the ETag you sent"),
            **errors(404),
        },
    )
    def get(self, request: Request, slug: str | None = None) -> Response:
        pipeline = pipeline_get(slug=slug or pipeline_default_slug())
        current = revision_for_new_generation(pipeline=pipeline)
        if current is None:
            raise NotFound(
                f"pipeline {pipeline.slug} has no active configuration revision",
                code="no_active_revision",
            )
        revision, arm = current
        etag = config_etag(pipeline.slug, revision.number, revision.params, arm)
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag_matches(request.headers.get("If-None-Match", ""), etag):
            return Response(status=status.HTTP_304_NOT_MODIFIED, headers=headers)
        body = {
            "pipeline": pipeline.slug,
            "revision": revision.number,
            "schema_version": revision.schema_version.number,
            "params": revision.params,
            "experiment_arm": arm,
            "etag": etag,
        }
        return Response(ConfigSerializer(body).data, headers=headers)
