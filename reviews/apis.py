"""Feedback over the API: a reviewer's ratings for a generation, and the feedback summary."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedbackloop.api_errors import LimitedJSONParser
from generation.apis import ANY_ROLE, errors, generation_or_404
from generation.authentication import ADMIN, REVIEWER, acting_user, allow
from generation.serializers import StrictCharField, StrictFloatField
from reviews import selectors, services
from reviews.models import IssueReport


class IssueSerializer(serializers.Serializer):
    category = serializers.ChoiceField(choices=IssueReport.Category.choices)
    start_s = StrictFloatField(min_value=0)
    end_s = StrictFloatField(min_value=0)
    severity = serializers.ChoiceField(
        choices=IssueReport.Severity.choices, default=IssueReport.Severity.MINOR
    )
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
        generation = generation_or_404(generation_id)
        serializer = FeedbackSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data: dict[str, Any] = serializer.validated_data
        review = services.review_create(
            reviewer=acting_user(request),
            generation=generation,
            ratings=data["ratings"],
            comments=data["comments"],
            issues=[services.IssueInput(**issue) for issue in data["issues"]],
            seconds_spent=data.get("seconds_spent"),
        )
        body = {"review_id": str(review.id), "generation_id": generation.pk}
        return Response(FeedbackCreatedSerializer(body).data, status=status.HTTP_201_CREATED)


class FeedbackSummaryApi(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        operation_id="feedback_summary",
        summary="The feedback summary: the same keys as get_feedback_summary()",
        responses={200: FeedbackSummarySerializer, **errors()},
    )
    def get(self, request: Request) -> Response:
        return Response(selectors.feedback_summary())
