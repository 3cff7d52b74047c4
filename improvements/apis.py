"""The improvement log over the API, and the admin's approve / reject / roll back / canary calls."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedbackloop.api_errors import LimitedJSONParser
from feedbackloop.errors import NotFound
from generation.apis import ANY_ROLE, errors
from generation.authentication import ADMIN, acting_user, allow
from generation.models import ConfigRevision
from improvements import experiments
from improvements.models import Experiment
from improvements.services import improvement_log


class TransitionSerializer(serializers.Serializer):
    to = serializers.CharField()
    at = serializers.CharField()
    actor = serializers.IntegerField(allow_null=True)
    note = serializers.CharField(allow_blank=True)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = serializers.CharField(allow_blank=True)  # a keyword in Python
        return fields


class ImprovementSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    source = serializers.CharField()
    parent = serializers.IntegerField(allow_null=True)
    rationale = serializers.CharField(allow_blank=True)
    changes = serializers.DictField(help_text="param → [old, new]")
    evidence = serializers.JSONField()
    predicted_impact = serializers.JSONField()
    created_at = serializers.CharField()
    transitions = TransitionSerializer(many=True)


class ImprovementQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=100, min_value=1, max_value=1000)


class ImprovementLogApi(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        operation_id="improvements_list",
        summary="The improvement log (the seed's get_improvement_log())",
        parameters=[ImprovementQuerySerializer],
        responses={200: ImprovementSerializer(many=True), **errors(400)},
    )
    def get(self, request: Request) -> Response:
        query = ImprovementQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        return Response(improvement_log(query.validated_data["limit"]))


# --- approval, rollback and the running canary ------------------------------------------------

APPROVE_PERMISSION = "generation.approve_configrevision"


class CanApprove(BasePermission):
    """A signed-in person with the approve permission (admins); workers and reviewers get 403."""

    message = "approving, rejecting and rolling back revisions needs the approve permission"

    def has_permission(self, request: Any, view: Any) -> bool:
        user = acting_user(request)
        return user is not None and user.is_active and user.has_perm(APPROVE_PERMISSION)


def revision_or_404(number: str) -> ConfigRevision:
    revision = (
        ConfigRevision.objects.filter(number=int(number)).first() if number.isdigit() else None
    )
    if revision is None:
        raise NotFound(f"no revision number {number}", code="unknown_revision")
    return revision


def revision_data(revision: ConfigRevision) -> dict[str, Any]:
    return {
        "number": revision.number,
        "status": revision.status,
        "source": revision.source,
        "parent": revision.parent.number if revision.parent_id else None,
        "rationale": revision.rationale,
        "rollout_share": revision.rollout_share,
        "created_at": revision.created_at.isoformat(),
    }


def experiment_data(experiment: Experiment) -> dict[str, Any]:
    decisions = experiment.decisions.order_by("created_at", "id")
    return {
        "id": experiment.pk,
        "candidate": experiment.candidate.number,
        "control": experiment.control.number,
        "share": experiment.share,
        "status": experiment.status,
        "alpha": experiment.alpha,
        "min_effect": experiment.min_effect,
        "min_ratings_per_arm": experiment.min_ratings_per_arm,
        "started_at": experiment.started_at.isoformat(),
        "finished_at": experiment.finished_at.isoformat() if experiment.finished_at else None,
        "result": {k: v for k, v in experiment.result.items() if k != "offsets"},
        "decisions": [
            {
                "kind": d.kind,
                "reason": d.reason,
                "estimate": d.estimate,
                "lower": d.lower,
                "upper": d.upper,
                "n_candidate": d.n_candidate,
                "n_control": d.n_control,
                "numbers": d.numbers,
                "at": d.created_at.isoformat(),
            }
            for d in decisions
        ],
    }


class RevisionOutSerializer(serializers.Serializer):
    number = serializers.IntegerField()
    status = serializers.CharField()
    source = serializers.CharField()
    parent = serializers.IntegerField(allow_null=True)
    rationale = serializers.CharField(allow_blank=True)
    rollout_share = serializers.FloatField(allow_null=True)
    created_at = serializers.CharField()


class DecisionSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["continue", "promote", "rollback"])
    reason = serializers.CharField(allow_blank=True)
    estimate = serializers.FloatField(allow_null=True, help_text="mean(candidate) − mean(control)")
    lower = serializers.FloatField(allow_null=True, help_text="always-valid lower bound")
    upper = serializers.FloatField(allow_null=True, help_text="always-valid upper bound")
    n_candidate = serializers.IntegerField()
    n_control = serializers.IntegerField()
    numbers = serializers.JSONField(help_text="arm counts, guardrail limits and breaches")
    at = serializers.CharField()


class ExperimentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    candidate = serializers.IntegerField(help_text="the canary's revision number")
    control = serializers.IntegerField(help_text="the active revision it is compared with")
    share = serializers.FloatField()
    status = serializers.CharField(help_text=f"one of: {', '.join(Experiment.Status.values)}")
    alpha = serializers.FloatField()
    min_effect = serializers.FloatField()
    min_ratings_per_arm = serializers.IntegerField()
    started_at = serializers.CharField()
    finished_at = serializers.CharField(allow_null=True)
    result = serializers.JSONField(help_text="the latest decision's numbers")
    decisions = DecisionSerializer(many=True)


class ApproveSerializer(serializers.Serializer):
    share = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.01,
        max_value=0.99,
        help_text="the canary's share of new generations (default: the criteria's canary_share)",
    )


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RevisionApproveApi(APIView):
    permission_classes = [CanApprove]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="revision_approve",
        summary="Approve a proposed revision: it starts as a canary against the active one",
        request=ApproveSerializer,
        responses={201: ExperimentSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, number: str) -> Response:
        revision = revision_or_404(number)
        body = ApproveSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        experiment = experiments.experiment_start(
            revision=revision, actor=acting_user(request), share=body.validated_data.get("share")
        )
        return Response(experiment_data(experiment), status=status.HTTP_201_CREATED)


class RevisionRejectApi(APIView):
    permission_classes = [CanApprove]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="revision_reject",
        summary="Reject a proposed or approved revision",
        request=NoteSerializer,
        responses={200: RevisionOutSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, number: str) -> Response:
        revision = revision_or_404(number)
        body = NoteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        revision = experiments.revision_reject(
            revision=revision,
            actor=acting_user(request),
            note=body.validated_data["note"] or "rejected over the API",
        )
        return Response(revision_data(revision))


class RevisionRollbackApi(APIView):
    permission_classes = [CanApprove]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="revision_rollback",
        summary="Roll back to this earlier revision",
        description=(
            "Creates a new revision (source rollback) with this revision's parameters and makes it "
            "active at once; a running canary is aborted. History is not rewritten. Rolling back "
            "to the active revision itself only stops the running canary (200)."
        ),
        request=None,
        responses={201: RevisionOutSerializer, 200: RevisionOutSerializer, **errors(404, 409)},
    )
    def post(self, request: Request, number: str) -> Response:
        target = revision_or_404(number)
        revision = experiments.revision_rollback_to(target=target, actor=acting_user(request))
        code = status.HTTP_200_OK if revision.pk == target.pk else status.HTTP_201_CREATED
        return Response(revision_data(revision), status=code)


class ExperimentCurrentApi(APIView):
    permission_classes = [allow(ADMIN)]

    @extend_schema(
        operation_id="experiment_current",
        summary="The running canary experiment (else the latest one) with every decision",
        description="For admins only: reviewers compare blind and must not know the arms.",
        responses={200: ExperimentSerializer, **errors(404)},
    )
    def get(self, request: Request) -> Response:
        experiment = experiments.experiment_current()
        if experiment is None:
            raise NotFound("no experiment has run yet", code="no_experiment")
        return Response(experiment_data(experiment))
