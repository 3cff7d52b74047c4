"""The improvement log over the API, and the admin's approve / reject / roll back / canary calls."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedbackloop.api_errors import LimitedJSONParser
from feedbackloop.api_fields import errors
from feedbackloop.errors import NotFound
from feedbackloop.roles import ADMIN, REVIEWER, WORKER, acting_user, allow
from improvements import experiments
from improvements.models import Experiment
from improvements.receipts import IDEMPOTENCY_KEY, idempotent
from improvements.services import improvement_log
from pipelines.models import APPROVE_PERMISSION, ConfigRevision, Pipeline
from pipelines.selectors import pipeline_or_default, revision_get
from pipelines.services.revisions import revision_reject, revision_rollback_to

ANY_ROLE = allow(WORKER, REVIEWER, ADMIN)


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
    pipeline = serializers.RegexField(
        r"^[a-z0-9][a-z0-9_-]{0,63}\Z", required=False, help_text="default: the default pipeline"
    )


class ImprovementLogApi(APIView):
    permission_classes = [ANY_ROLE]

    @extend_schema(
        operation_id="improvements_list",
        summary="The improvement log (the seed's get_improvement_log())",
        parameters=[ImprovementQuerySerializer],
        responses={200: ImprovementSerializer(many=True), **errors(400, 404)},
    )
    def get(self, request: Request) -> Response:
        query = ImprovementQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        data = query.validated_data
        pipeline = pipeline_or_default(data.get("pipeline"))
        return Response(improvement_log(pipeline=pipeline, limit=data["limit"]))


# --- approval, rollback and the running canary ------------------------------------------------


class CanApprove(BasePermission):
    """A signed-in person with the approve permission (admins); workers and reviewers get 403."""

    message = "approving, rejecting and rolling back revisions needs the approve permission"

    def has_permission(self, request: Any, view: Any) -> bool:
        user = acting_user(request)
        return user is not None and user.is_active and user.has_perm(APPROVE_PERMISSION)


def revision_or_404(number: str, slug: str | None) -> ConfigRevision:
    return revision_get(pipeline=pipeline_or_default(slug), number=number)


def target_of(revision: ConfigRevision) -> str:
    return f"{revision.pipeline.slug}/r{revision.number}"


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
    decisions = experiment.decisions.select_related("arm__revision").order_by("created_at", "id")
    return {
        "id": experiment.pk,
        "pipeline": experiment.pipeline.slug,
        "control": experiment.control.number,
        "status": experiment.status,
        "alpha": experiment.alpha,
        "min_effect": experiment.min_effect,
        "min_ratings_per_arm": experiment.min_ratings_per_arm,
        "started_at": experiment.started_at.isoformat(),
        "finished_at": experiment.finished_at.isoformat() if experiment.finished_at else None,
        "arms": [
            {
                "revision": arm.revision.number,
                "role": arm.role,
                "status": arm.status,
                "share": arm.share,
                "reason": arm.reason,
                "result": arm.result,
                "started_at": arm.started_at.isoformat(),
                "decided_at": arm.decided_at.isoformat() if arm.decided_at else None,
            }
            for arm in experiment.arms.select_related("revision").order_by("id")
        ],
        "result": experiment.result,
        "decisions": [
            {
                "revision": d.arm.revision.number if d.arm_id else None,
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
    revision = serializers.IntegerField(allow_null=True, help_text="the arm's revision number")
    kind = serializers.ChoiceField(choices=["continue", "promote", "drop", "rollback", "abort"])
    reason = serializers.CharField(allow_blank=True)
    estimate = serializers.FloatField(allow_null=True, help_text="mean(arm) − mean(control)")
    lower = serializers.FloatField(allow_null=True, help_text="always-valid lower bound")
    upper = serializers.FloatField(allow_null=True, help_text="always-valid upper bound")
    n_candidate = serializers.IntegerField()
    n_control = serializers.IntegerField()
    numbers = serializers.JSONField(help_text="arm counts, guardrail limits and breaches")
    at = serializers.CharField()


class ArmSerializer(serializers.Serializer):
    revision = serializers.IntegerField()
    role = serializers.CharField(help_text="challenger (tested for promotion) or explorer")
    status = serializers.CharField()
    share = serializers.FloatField(help_text="its share of new generations while running")
    reason = serializers.CharField(allow_blank=True)
    result = serializers.JSONField()
    started_at = serializers.CharField()
    decided_at = serializers.CharField(allow_null=True)


class ExperimentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    pipeline = serializers.CharField()
    control = serializers.IntegerField(help_text="the active revision the arms are compared with")
    status = serializers.CharField(help_text=f"one of: {', '.join(Experiment.Status.values)}")
    alpha = serializers.FloatField()
    min_effect = serializers.FloatField()
    min_ratings_per_arm = serializers.IntegerField()
    started_at = serializers.CharField()
    finished_at = serializers.CharField(allow_null=True)
    arms = ArmSerializer(many=True)
    result = serializers.JSONField()
    decisions = DecisionSerializer(many=True)


class ApproveSerializer(serializers.Serializer):
    share = serializers.FloatField(
        required=False,
        allow_null=True,
        min_value=0.01,
        max_value=0.8,
        help_text="the arm's share of new generations (default: the share the improver planned "
        "for it, as far as it fits beside the running arms; otherwise the arms split the canary "
        "share)",
    )


class NoteSerializer(serializers.Serializer):
    note = serializers.CharField(required=False, allow_blank=True, default="", max_length=2000)


class RevisionApproveApi(APIView):
    permission_classes = [CanApprove]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="revision_approve",
        summary="Approve a proposed revision: it joins its pipeline's experiment as an arm",
        description="`/api/v1/revisions/{number}/approve/` is the default pipeline's. With an "
        "Idempotency-Key a repeat returns the first answer and changes nothing.",
        parameters=[IDEMPOTENCY_KEY],
        request=ApproveSerializer,
        responses={201: ExperimentSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, number: str, slug: str | None = None) -> Response:
        revision = revision_or_404(number, slug)

        def approve() -> Response:
            body = ApproveSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            arm = experiments.revision_approve_as_arm(
                revision=revision,
                actor=acting_user(request),
                share=body.validated_data.get("share"),
            )
            return Response(experiment_data(arm.experiment), status=status.HTTP_201_CREATED)

        return idempotent(
            request, action="revision.approve", target=target_of(revision), perform=approve
        )


class RevisionRejectApi(APIView):
    permission_classes = [CanApprove]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="revision_reject",
        summary="Reject a proposed or approved revision",
        description="With an Idempotency-Key a repeat returns the first answer (rejecting again "
        "without one is 409).",
        parameters=[IDEMPOTENCY_KEY],
        request=NoteSerializer,
        responses={200: RevisionOutSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, number: str, slug: str | None = None) -> Response:
        revision = revision_or_404(number, slug)

        def reject() -> Response:
            body = NoteSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            rejected = revision_reject(
                revision=revision,
                actor=acting_user(request),
                note=body.validated_data["note"] or "rejected over the API",
            )
            return Response(revision_data(rejected))

        return idempotent(
            request, action="revision.reject", target=target_of(revision), perform=reject
        )


class RevisionRollbackApi(APIView):
    permission_classes = [CanApprove]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="revision_rollback",
        summary="Roll back to this earlier revision",
        description=(
            "Creates a new revision (source rollback) with this revision's parameters and makes it "
            "active at once; running arms are dropped. History is not rewritten. Rolling back to "
            "the active revision itself only drops the running arms (200). Repeating the same "
            "rollback while its result is active changes nothing and answers 200 with it; with "
            "an Idempotency-Key a repeat returns the first answer itself (201 if it created)."
        ),
        parameters=[IDEMPOTENCY_KEY],
        request=None,
        responses={201: RevisionOutSerializer, 200: RevisionOutSerializer, **errors(404, 409)},
    )
    def post(self, request: Request, number: str, slug: str | None = None) -> Response:
        target = revision_or_404(number, slug)

        def rollback() -> Response:
            with transaction.atomic():
                # The service's own lock, taken first: whether this call created the revision
                # is then counted while no concurrent rollback can create one.
                Pipeline.objects.select_for_update().get(pk=target.pipeline_id)
                before = ConfigRevision.objects.filter(pipeline_id=target.pipeline_id).count()
                revision = revision_rollback_to(target=target, actor=acting_user(request))
                experiments.experiment_settle(pipeline=target.pipeline, actor=acting_user(request))
                created = (
                    ConfigRevision.objects.filter(pipeline_id=target.pipeline_id).count() > before
                )
            code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
            return Response(revision_data(revision), status=code)

        return idempotent(
            request, action="revision.rollback", target=target_of(target), perform=rollback
        )


class BatchApproveSerializer(serializers.Serializer):
    revisions = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        allow_empty=False,
        max_length=50,
        help_text="the numbers of the proposals to approve",
    )


class BatchApprovedSerializer(serializers.Serializer):
    opened = serializers.ListField(child=serializers.IntegerField())
    refused = serializers.DictField(child=serializers.CharField(), help_text="number → why")


class ProposalsApproveApi(APIView):
    permission_classes = [CanApprove]
    parser_classes = [LimitedJSONParser]

    @extend_schema(
        operation_id="proposals_approve_batch",
        summary="Approve a batch of proposals: each opens as an arm of the pipeline's experiment",
        description="Each proposal is tried on its own: one that cannot open (not proposed any "
        "more, no share left) is listed under `refused` with the reason, the rest open. With an "
        "Idempotency-Key a repeat returns the first answer and changes nothing.",
        parameters=[IDEMPOTENCY_KEY],
        request=BatchApproveSerializer,
        responses={200: BatchApprovedSerializer, **errors(400, 404, 409)},
    )
    def post(self, request: Request, slug: str) -> Response:
        pipeline = pipeline_or_default(slug)

        def approve() -> Response:
            body = BatchApproveSerializer(data=request.data)
            body.is_valid(raise_exception=True)
            revisions = [
                revision_get(pipeline=pipeline, number=n) for n in body.validated_data["revisions"]
            ]
            opened, refused = experiments.revisions_approve_as_arms(
                revisions=revisions, actor=acting_user(request)
            )
            return Response({"opened": [a.revision.number for a in opened], "refused": refused})

        return idempotent(
            request, action="proposals.approve", target=pipeline.slug, perform=approve
        )


class ExperimentCurrentApi(APIView):
    permission_classes = [allow(ADMIN)]

    @extend_schema(
        operation_id="experiment_current",
        summary="The pipeline's running experiment (else its latest) with every arm and decision",
        description="For admins only: reviewers compare blind and must not know the arms. "
        "`/api/v1/experiments/current/` is the default pipeline's.",
        responses={200: ExperimentSerializer, **errors(404)},
    )
    def get(self, request: Request, slug: str | None = None) -> Response:
        pipeline = pipeline_or_default(slug)
        experiment = experiments.experiment_current(pipeline=pipeline)
        if experiment is None:
            raise NotFound(f"no experiment has run in {pipeline.slug} yet", code="no_experiment")
        return Response(experiment_data(experiment))
