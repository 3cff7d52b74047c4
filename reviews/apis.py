"""Feedback over the API: a reviewer's ratings for a generation, and the feedback summary."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedbackloop.api_errors import LimitedJSONParser
from feedbackloop.roles import ADMIN, REVIEWER, acting_user, allow
from generation.apis import ANY_ROLE, errors, generation_or_404
from generation.serializers import StrictCharField, StrictFloatField
from pipelines.selectors import pipeline_or_default
from reviews import selectors, services
from reviews.models import IssueReport

SEVERITY_HELP = ", ".join(f'"{label}" or {value}' for value, label in IssueReport.Severity.choices)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "enum": list(IssueReport.Severity.labels)},
            {"type": "integer", "enum": list(IssueReport.Severity.values)},
        ],
        "description": f"{SEVERITY_HELP} (default minor)",
    }
)
class SeverityField(serializers.Field):
    """An issue's severity by name ("minor", "major", "critical", as the review page offers
    them) or by number (1-3); stored as the number."""

    default_error_messages = {"invalid": f"must be one of {SEVERITY_HELP}; got {{value!r}}"}

    def to_internal_value(self, data: Any) -> int:
        by_name = {label: value for value, label in IssueReport.Severity.choices}
        if isinstance(data, str) and data.strip().lower() in by_name:
            return by_name[data.strip().lower()]
        is_number = isinstance(data, int) and not isinstance(data, bool)
        if is_number and data in IssueReport.Severity.values:
            return data
        self.fail("invalid", value=data)

    def to_representation(self, value: int) -> str:
        return IssueReport.Severity(value).label


class IssueSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=IssueReport.Category.choices)
    start_s = StrictFloatField(min_value=0)
    end_s = StrictFloatField(min_value=0)
    severity = SeverityField(required=False, default=IssueReport.Severity.MINOR)
    note = StrictCharField(required=False, blank_ok=True, default="", max_length=2000)


class FeedbackSerializer(serializers.Serializer):
    """The seed's record_human_feedback(generation_id, ratings, comments) body, plus issues."""

    ratings = serializers.DictField(
        allow_empty=False, help_text='dimension slug → integer 1-5, e.g. {"visual_quality": 4}'
    )
    comments = StrictCharField(required=False, blank_ok=True, default="", max_length=10000)
    issues = IssueSerializer(many=True, required=False, default=list)
    seconds_spent = StrictFloatField(required=False, min_value=0, max_value=86400)


class FeedbackCreatedSerializer(serializers.Serializer):
    review_id = serializers.CharField()
    generation_id = serializers.UUIDField()


class FeedbackSummarySerializer(serializers.Serializer):
    """get_feedback_summary(): these keys plus avg_<dimension> for every rating dimension."""

    ratings_per_dimension = serializers.DictField(child=serializers.IntegerField())
    total_ratings = serializers.IntegerField()
    total_reviews = serializers.IntegerField()
    total_comparisons = serializers.IntegerField()
    total_generations = serializers.IntegerField()
    generations_by_status = serializers.DictField(child=serializers.IntegerField())
    issue_counts = serializers.DictField(child=serializers.IntegerField())
    active_revision = serializers.DictField(allow_null=True)


def feedback_record(reviewer: Any, generation_id: str, data: dict[str, Any]) -> dict[str, str]:
    """Write a validated FeedbackSerializer body; the 201 body. One SQL statement for a
    well-formed submission (see services.review_record); DomainErrors propagate."""
    review = services.review_record(
        reviewer=reviewer,
        generation_id=generation_id,
        ratings=data["ratings"],
        comments=data["comments"],
        issues=[services.IssueInput(**issue) for issue in data["issues"]],
        seconds_spent=data.get("seconds_spent"),
    )
    return {"review_id": str(review.id), "generation_id": str(review.generation_id)}


class FeedbackCreateApi(APIView):
    permission_classes = [allow(REVIEWER, ADMIN)]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="generations_feedback_create",
        summary="Record a reviewer's ratings and comments (the seed's record_human_feedback)",
        description="For signed-in reviewers and admins; a worker token gets 403. One review "
        "per reviewer and generation (a second is 409); only finished generations (else 400).",
        request=FeedbackSerializer,
        responses={201: FeedbackCreatedSerializer, **errors(400, 404, 409, 413, 415)},
    )
    def post(self, request: Request, generation_id: str) -> Response:
        try:
            serializer = FeedbackSerializer(data=request.data)
            serializer.is_valid(raise_exception=True)
        except exceptions.APIException:
            generation_or_404(generation_id)  # an unknown generation is a 404 before a bad body
            raise
        body = feedback_record(acting_user(request), generation_id, serializer.validated_data)
        return Response(body, status=status.HTTP_201_CREATED)


class FeedbackSummaryApi(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        operation_id="feedback_summary",
        summary="One pipeline's feedback summary: the same keys as get_feedback_summary()",
        parameters=[
            OpenApiParameter(
                "pipeline", OpenApiTypes.STR, description="a pipeline's slug (default: the default)"
            )
        ],
        responses={200: FeedbackSummarySerializer, **errors(404)},
    )
    def get(self, request: Request) -> Response:
        pipeline = pipeline_or_default(request.query_params.get("pipeline") or None)
        return Response(selectors.feedback_summary(pipeline=pipeline))
