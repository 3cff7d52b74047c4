"""The worker API: configuration, leased jobs, uploads, generations and worker metrics.

Each view checks the caller's role, validates input with a serializer, calls one selector or
service and shapes the answer; errors become JSON in feedbackloop.api_errors.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedbackloop.api_errors import LimitedJSONParser, LimitedMultiPartParser
from feedbackloop.api_fields import errors
from feedbackloop.errors import Forbidden, InvalidInput, NotFound
from feedbackloop.roles import ADMIN, REVIEWER, WORKER, acting_user, acting_worker, allow, role_of
from generation import selectors
from generation.models import Generation
from generation.serializers import (
    GenerationCreateSerializer,
    GenerationDetailSerializer,
    GenerationFilterSerializer,
    GenerationSerializer,
    JobClaimSerializer,
    JobCompleteKeysSerializer,
    JobCompleteSerializer,
    JobFailSerializer,
    JobHeartbeatSerializer,
    JobUploadUrlRequestSerializer,
    JobUploadUrlSerializer,
    MetricsStoredSerializer,
    MetricsUploadSerializer,
)
from generation.services.direct_uploads import job_complete_from_keys, job_upload_urls
from generation.services.leases import job_claim, job_complete, job_fail, job_heartbeat
from generation.services.metrics import worker_metrics_store
from generation.services.requests import job_request
from pipelines.selectors import pipeline_default_slug, pipeline_or_default

ANY_ROLE = allow(WORKER, REVIEWER, ADMIN)
WORKER_ONLY = allow(WORKER)
WORKER_OR_ADMIN = allow(WORKER, ADMIN)


class WorkerTokenScheme(OpenApiAuthenticationExtension):
    """How the schema describes worker tokens (drf-spectacular finds it by its target)."""

    target_class = "generation.authentication.WorkerTokenAuthentication"
    name = "workerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": 'A worker token: "Token <key>" (or "Bearer <key>").',
        }


def generation_or_404(generation_id: str) -> Generation:
    generation = selectors.generation_get(generation_id=generation_id)
    if generation is None:
        raise NotFound(f"no generation with id {generation_id}", code="unknown_generation")
    return generation


def detail_response(request: Request, generation: Generation, code: int = 200) -> Response:
    context = {"request": request, "worker": acting_worker(request)}
    return Response(GenerationDetailSerializer(generation, context=context).data, status=code)


def form_fields(request: Request) -> dict[str, Any]:
    """The multipart fields as a plain dict: DRF reads an empty form field as "not given",
    but here an empty field is invalid, as the schema says."""
    data = request.data
    return data.dict() if hasattr(data, "dict") else dict(data)


class JsonApiView(APIView):
    parser_classes = [LimitedJSONParser]


# --- jobs -----------------------------------------------------------------------------------


class JobClaimApi(JsonApiView):
    permission_classes = [WORKER_ONLY]

    @extend_schema(
        operation_id="jobs_claim",
        summary="Lease the oldest waiting job of the pipelines you serve",
        description="`pipelines` names the pipelines to draw from (default: every pipeline "
        "your token may serve; one it may not serve is 403). 204 when no job waits. The "
        "answer's `lease.lease_id` must accompany heartbeat, complete and fail; the job carries "
        "its pipeline and resolved params.",
        request=JobClaimSerializer,
        responses={
            200: GenerationDetailSerializer,
            204: OpenApiResponse(description="no job is waiting"),
            **errors(400, 404, 413, 415),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = JobClaimSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = job_claim(
            worker=acting_worker(request),
            pipelines=serializer.validated_data.get("pipelines"),
            lease_seconds=serializer.validated_data.get("lease_seconds"),
        )
        if job is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return detail_response(request, job)


class JobHeartbeatApi(JsonApiView):
    permission_classes = [WORKER_ONLY]

    @extend_schema(
        operation_id="jobs_heartbeat",
        summary="Extend your lease (and report progress)",
        request=JobHeartbeatSerializer,
        responses={200: GenerationDetailSerializer, **errors(400, 404, 409, 413, 415)},
    )
    def post(self, request: Request, generation_id: str) -> Response:
        serializer = JobHeartbeatSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = job_heartbeat(
            generation_id=generation_or_404(generation_id).pk,
            worker=acting_worker(request),
            lease_id=data["lease_id"],
            lease_seconds=data.get("lease_seconds"),
            progress=data.get("progress"),
        )
        return detail_response(request, job)


class JobFailApi(JsonApiView):
    permission_classes = [WORKER_ONLY]

    @extend_schema(
        operation_id="jobs_fail",
        summary="Give up a leased job: failed with your error, or requeued",
        request=JobFailSerializer,
        responses={200: GenerationDetailSerializer, **errors(400, 404, 409, 413, 415)},
    )
    def post(self, request: Request, generation_id: str) -> Response:
        serializer = JobFailSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = job_fail(
            generation_id=generation_or_404(generation_id).pk,
            worker=acting_worker(request),
            lease_id=data["lease_id"],
            error=data["error"],
            requeue=data["requeue"],
        )
        return detail_response(request, job)


class JobUploadUrlApi(JsonApiView):
    permission_classes = [WORKER_ONLY]

    @extend_schema(
        operation_id="jobs_upload_url",
        summary="Presigned URLs to PUT a leased job's video and poster into object storage",
        description="Only when media is in object storage (MEDIA_STORAGE=s3; otherwise 409 "
        "direct_upload_unavailable: upload to complete/ instead). PUT each file's bytes to "
        "its URL, then call complete/ with JSON {lease_id, video_key, poster_key?}.",
        request=JobUploadUrlRequestSerializer,
        responses={200: JobUploadUrlSerializer, **errors(400, 404, 409, 413, 415)},
    )
    def post(self, request: Request, generation_id: str) -> Response:
        generation = generation_or_404(generation_id)
        serializer = JobUploadUrlRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        targets = job_upload_urls(
            generation_id=generation.pk,
            worker=acting_worker(request),
            lease_id=serializer.validated_data["lease_id"],
        )
        return Response(JobUploadUrlSerializer(targets).data)


class JobCompleteApi(APIView):
    permission_classes = [WORKER_ONLY]
    parser_classes = [LimitedMultiPartParser, LimitedJSONParser]

    @extend_schema(
        operation_id="jobs_complete",
        summary="Finish a leased job by uploading its video",
        description="multipart/form-data with the files, or JSON with the keys of files PUT "
        "to object storage through upload-url/. The video is opened as a video before the job "
        "succeeds; a file that is not one is refused with 400 and the reason. Past "
        "API_MAX_UPLOAD_BYTES the answer is 413 (400 for an object in storage). A lease that "
        "expired or was claimed again is 409. The server then measures the video on the "
        "metrics queue.",
        request={
            "multipart/form-data": JobCompleteSerializer,
            "application/json": JobCompleteKeysSerializer,
        },
        responses={200: GenerationDetailSerializer, **errors(400, 404, 409, 413, 415)},
    )
    def post(self, request: Request, generation_id: str) -> Response:
        generation = generation_or_404(generation_id)
        if (request.content_type or "").startswith("application/json"):
            keys = JobCompleteKeysSerializer(data=request.data)
            keys.is_valid(raise_exception=True)
            job = job_complete_from_keys(
                generation_id=generation.pk, worker=acting_worker(request), **keys.validated_data
            )
            return detail_response(request, job)
        serializer = JobCompleteSerializer(data=form_fields(request))
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = job_complete(
            generation_id=generation.pk,
            worker=acting_worker(request),
            lease_id=data["lease_id"],
            video=data["video"],
            poster=data.get("poster"),
            script=data.get("script"),
            generation_seconds=data.get("generation_seconds"),
            cpu_seconds=data.get("cpu_seconds"),
            peak_rss_bytes=data.get("peak_rss_bytes"),
        )
        return detail_response(request, job)


# --- generations ----------------------------------------------------------------------------


class GenerationPagination(PageNumberPagination):
    """Pages of 50 (page_size 1-200). A page or page_size that is not a number is a 400; a
    page past the end is a 404."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    last_page_strings = ()

    def get_page_number(self, request: Request, paginator: Any) -> str | int:
        raw = request.query_params.get(self.page_query_param)
        if raw is None:
            return 1
        if not raw.isascii() or not raw.removeprefix("-").isdigit():
            raise ValidationError({self.page_query_param: ["must be an integer"]})
        return raw  # out of range is a 404 from the paginator

    def get_page_size(self, request: Request) -> int:
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or not 1 <= int(raw) <= self.max_page_size:
            raise ValidationError(
                {"page_size": [f"must be an integer from 1 to {self.max_page_size}"]}
            )
        return int(raw)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == "page":
                parameter["schema"]["minimum"] = 1
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    OpenApiTypes.STR,
    OpenApiParameter.HEADER,
    pattern=r"^[!-~]{1,128}$",
    description="1-128 printable ASCII characters, no spaces; a repeat returns the first "
    "generation (200)",
)


def idempotency_key_of(request: Request) -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not (1 <= len(key) <= 128) or not all(33 <= ord(c) <= 126 for c in key):
        raise InvalidInput(
            "Idempotency-Key must be 1 to 128 printable ASCII characters without spaces",
            code="invalid_idempotency_key",
        )
    return key


class GenerationsApi(generics.GenericAPIView):
    """GET lists generations (any role); POST queues one (workers and admins)."""

    parser_classes = [LimitedJSONParser]
    pagination_class = GenerationPagination
    serializer_class = GenerationSerializer

    def get_permissions(self) -> list[Any]:
        if self.request.method == "POST":
            return [WORKER_OR_ADMIN()]
        return [ANY_ROLE()]

    @extend_schema(
        operation_id="generations_list",
        summary="Generations, newest first, filtered and paginated",
        parameters=[GenerationFilterSerializer],
        responses={200: GenerationSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        # A plain dict: DRF reads form-style input "?status=" as "not given"; here it is invalid.
        filters = GenerationFilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        blind = {"pipeline", "revision", "backend"} & set(data)
        if blind and role_of(request.user) == REVIEWER:
            raise Forbidden(
                f"reviewers compare blind: filtering by {', '.join(sorted(blind))} is for staff "
                "and workers",
                code="blind",
            )
        if data.get("revision") is not None and not data.get("pipeline"):
            data["pipeline"] = pipeline_default_slug()  # revision numbers are per pipeline
        generations = selectors.generation_list(
            pipeline=data.get("pipeline"),
            status=data.get("status"),
            revision_number=data.get("revision"),
            backend=data.get("backend"),
            created_after=data.get("created_after"),
            created_before=data.get("created_before"),
            prompt_contains=data.get("q"),
        )
        page = self.paginate_queryset(generations)
        context = {"request": request, "worker": acting_worker(request)}
        return self.get_paginated_response(
            GenerationSerializer(page, many=True, context=context).data
        )

    @extend_schema(
        operation_id="generations_create",
        summary="Queue a generation (a job for workers, or a server-side render)",
        description="`pipeline` names the pipeline (default: the default pipeline). With an "
        "Idempotency-Key the same key returns the same generation: 201 the first time, 200 "
        "after; the same key with a different prompt, backend or pipeline is 409.",
        parameters=[IDEMPOTENCY_KEY],
        request=GenerationCreateSerializer,
        responses={
            201: GenerationDetailSerializer,
            200: GenerationDetailSerializer,
            **errors(400, 404, 409, 413, 415),
        },
    )
    def post(self, request: Request) -> Response:
        key = idempotency_key_of(request)
        serializer = GenerationCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        worker = acting_worker(request)
        if data["claim"] and worker is None:
            raise InvalidInput("only a worker token can claim a job", code="invalid_claim")
        generation, created = job_request(
            pipeline=pipeline_or_default(data.get("pipeline")),
            prompt=data["prompt"],
            backend=data["backend"],
            idempotency_key=key,
            requested_by=acting_user(request),
            claim_for=worker if data["claim"] else None,
            lease_seconds=data.get("lease_seconds"),
        )
        return detail_response(request, generation, 201 if created else 200)


class GenerationDetailApi(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        operation_id="generations_retrieve",
        summary="One generation with its script and metrics",
        responses={200: GenerationDetailSerializer, **errors(404)},
    )
    def get(self, request: Request, generation_id: str) -> Response:
        return detail_response(request, generation_or_404(generation_id))


class GenerationMetricsApi(JsonApiView):
    permission_classes = [WORKER_ONLY]

    @extend_schema(
        operation_id="generations_metrics_create",
        summary="Post the worker's own metrics for a finished generation",
        description="Stored with source=worker; the server's metrics are never touched. A new "
        "post replaces this generation's earlier worker metrics.",
        request=MetricsUploadSerializer,
        responses={201: MetricsStoredSerializer, **errors(400, 404, 409, 413, 415)},
    )
    def post(self, request: Request, generation_id: str) -> Response:
        generation = generation_or_404(generation_id)
        serializer = MetricsUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        rows = worker_metrics_store(
            generation=generation, metrics=data["metrics"], version=data["version"]
        )
        body = {
            "generation": generation.pk,
            "source": "worker",
            "version": data["version"],
            "metrics": {row.name: row.value for row in rows},
        }
        return Response(MetricsStoredSerializer(body).data, status=status.HTTP_201_CREATED)
