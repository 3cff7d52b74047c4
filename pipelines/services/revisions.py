"""The whole lifecycle of a configuration revision, in one place.

    proposed → approved → canary → active → retired
        ↘ rejected     ↘ active        ↘ rolled_back
                        (canary → rolled_back when an experiment drops it)

Every step is one transaction that locks the pipeline row first, so two admins (or an admin and
the improver) acting on one pipeline at once are serialised, and records a RevisionTransition
(who, when, from, to, why). Exactly one revision per pipeline is active: the database refuses
a second (a partial unique index), and activation retires the old one in the same transaction.
While canaries run in a pipeline, only an experiment's promotion or a rollback may change its
active revision: "approve and activate" is refused, so no experiment loses its control.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Max

from feedbackloop.actors import person_or_none
from feedbackloop.errors import Conflict, InvalidInput
from pipelines.declarations import params_check
from pipelines.models import ConfigRevision, Pipeline, RevisionTransition
from pipelines.selectors import revision_active, schema_current

S = ConfigRevision.Status

ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    S.PROPOSED: {S.APPROVED, S.REJECTED},
    S.APPROVED: {S.CANARY, S.ACTIVE, S.REJECTED},
    S.CANARY: {S.ACTIVE, S.ROLLED_BACK},
    S.ACTIVE: {S.RETIRED, S.ROLLED_BACK},
    S.RETIRED: set(),
    S.REJECTED: set(),
    S.ROLLED_BACK: set(),
}


def _lock(pipeline_id: int) -> Pipeline:
    return Pipeline.objects.select_for_update().get(pk=pipeline_id)


def _record(revision: ConfigRevision, from_status: str, to_status: str, actor: Any, note: str):
    RevisionTransition.objects.create(
        revision=revision,
        from_status=from_status,
        to_status=to_status,
        actor=person_or_none(actor),
        note=note,
    )


def revision_create(
    *,
    pipeline: Pipeline,
    params: dict[str, Any],
    parent: ConfigRevision | None = None,
    source: str = ConfigRevision.Source.MANUAL,
    rationale: str = "",
    evidence: dict[str, Any] | None = None,
    predicted_impact: dict[str, Any] | None = None,
    created_by: Any = None,
    note: str = "",
) -> ConfigRevision:
    """A proposed revision with the pipeline's next number, its params checked against the
    pipeline's current declaration (keys left out take their declared default)."""
    if parent is not None and parent.pipeline_id != pipeline.pk:
        raise InvalidInput(
            f"the parent r{parent.number} belongs to another pipeline", code="invalid_parent"
        )
    version = schema_current(pipeline=pipeline)
    resolved = params_check(version.parameters, params)
    last_error: Exception | None = None
    for _attempt in range(5):
        try:
            with transaction.atomic():
                latest = ConfigRevision.objects.filter(pipeline=pipeline).aggregate(
                    n=Max("number")
                )["n"]
                revision = ConfigRevision.objects.create(
                    pipeline=pipeline,
                    schema_version=version,
                    number=(latest or 0) + 1,
                    parent=parent,
                    params=resolved,
                    source=source,
                    status=S.PROPOSED,
                    rationale=rationale,
                    evidence=evidence or {},
                    predicted_impact=predicted_impact or {},
                    created_by=person_or_none(created_by),
                )
                _record(revision, "", S.PROPOSED, created_by, note or rationale[:500])
                return revision
        except IntegrityError as exc:
            last_error = exc
            continue  # two writers took the same number; the unique constraint caught it
    raise Conflict(f"could not allocate a revision number; try again ({last_error})")


@transaction.atomic
def revision_transition(
    *,
    revision: ConfigRevision,
    to_status: str,
    actor: Any = None,
    note: str = "",
    rollout_share: float | None = None,
) -> ConfigRevision:
    """Move a revision one step along its lifecycle and record it.

    Activating retires the pipeline's active revision in the same transaction. Entering canary
    needs the share of new generations it gets; leaving canary clears it.
    """
    if to_status == S.CANARY and not (rollout_share is not None and 0 < rollout_share < 1):
        raise InvalidInput("a canary needs a rollout share between 0 and 1", code="invalid_share")
    _lock(revision.pipeline_id)
    revision = ConfigRevision.objects.select_for_update().get(pk=revision.pk)
    from_status = revision.status
    if to_status not in ALLOWED_TRANSITIONS.get(from_status, set()):
        raise Conflict(
            f"revision r{revision.number} cannot go from {from_status} to {to_status}",
            code="invalid_transition",
        )
    if to_status == S.ACTIVE:
        current = revision_active(pipeline=revision.pipeline)
        if current is not None:
            ConfigRevision.objects.filter(pk=current.pk).update(status=S.RETIRED)
            _record(current, S.ACTIVE, S.RETIRED, actor, f"replaced by r{revision.number}")
    ConfigRevision.objects.filter(pk=revision.pk).update(
        status=to_status, rollout_share=rollout_share if to_status == S.CANARY else None
    )
    _record(revision, from_status, to_status, actor, note)
    revision.refresh_from_db()
    return revision


def revision_approve(
    *, revision: ConfigRevision, actor: Any = None, note: str = ""
) -> ConfigRevision:
    return revision_transition(revision=revision, to_status=S.APPROVED, actor=actor, note=note)


def revision_reject(
    *, revision: ConfigRevision, actor: Any = None, note: str = ""
) -> ConfigRevision:
    """Reject a proposed or approved revision: it never runs."""
    return revision_transition(
        revision=revision, to_status=S.REJECTED, actor=actor, note=note or "rejected"
    )


@transaction.atomic
def revision_approve_and_activate(
    *, revision: ConfigRevision, actor: Any = None, note: str = ""
) -> ConfigRevision:
    """Approve (if still proposed) and activate at once, skipping experiments.

    Refused while canaries run in the pipeline: the experiment would lose its control arm.
    """
    _lock(revision.pipeline_id)
    if ConfigRevision.objects.filter(pipeline_id=revision.pipeline_id, status=S.CANARY).exists():
        raise Conflict(
            f"an experiment is running in pipeline {revision.pipeline.slug}: let it decide, or "
            "roll back first",
            code="experiment_running",
        )
    revision.refresh_from_db()
    if revision.status == S.PROPOSED:
        revision = revision_approve(revision=revision, actor=actor, note=note)
    return revision_transition(revision=revision, to_status=S.ACTIVE, actor=actor, note=note)


def revision_canary_start(
    *, revision: ConfigRevision, share: float, actor: Any = None, note: str = ""
) -> ConfigRevision:
    """Approve (if still proposed) and run as a canary on ``share`` of new generations."""
    with transaction.atomic():
        _lock(revision.pipeline_id)
        revision.refresh_from_db()
        taken = sum(
            c.rollout_share or 0
            for c in ConfigRevision.objects.filter(
                pipeline_id=revision.pipeline_id, status=S.CANARY
            )
        )
        if taken + share >= 1:
            raise Conflict(
                f"canaries already take {taken:.0%} of new generations; {share:.0%} more leaves "
                "nothing for the control",
                code="no_share_left",
            )
        if revision.status == S.PROPOSED:
            revision = revision_approve(revision=revision, actor=actor, note="approved")
        return revision_transition(
            revision=revision, to_status=S.CANARY, actor=actor, note=note, rollout_share=share
        )


@transaction.atomic
def revision_canary_shares(*, pipeline: Pipeline, shares: dict[int, float]) -> None:
    """Set the traffic share of each running canary (revision id → share), all at once.

    Every share is in (0, 1) and together with the canaries left as they are they leave room
    for the control.
    """
    _lock(pipeline.pk)
    canaries = dict(
        ConfigRevision.objects.filter(pipeline=pipeline, status=S.CANARY).values_list(
            "pk", "rollout_share"
        )
    )
    unknown = set(shares) - set(canaries)
    if unknown:
        raise InvalidInput(f"revisions {sorted(unknown)} are not canaries of {pipeline.slug}")
    total = sum(shares.values()) + sum(
        share or 0 for pk, share in canaries.items() if pk not in shares
    )
    if any(not 0 < s < 1 for s in shares.values()) or total >= 1:
        raise InvalidInput(
            "canary shares must each be in (0, 1) and, with the other canaries', sum to less than 1"
        )
    for revision_id, share in shares.items():
        ConfigRevision.objects.filter(pk=revision_id, status=S.CANARY).update(rollout_share=share)


def revision_promote(
    *, revision: ConfigRevision, actor: Any = None, note: str = ""
) -> ConfigRevision:
    """A canary becomes the active revision (an experiment decided it is better)."""
    return revision_transition(revision=revision, to_status=S.ACTIVE, actor=actor, note=note)


def revision_drop(*, revision: ConfigRevision, actor: Any = None, note: str = "") -> ConfigRevision:
    """A canary leaves the experiment without being promoted."""
    return revision_transition(revision=revision, to_status=S.ROLLED_BACK, actor=actor, note=note)


@transaction.atomic
def revision_ensure_active(
    *, pipeline: Pipeline, params: dict[str, Any] | None = None, actor: Any = None
) -> ConfigRevision:
    """The pipeline's active revision, creating revision 1 from ``params`` (default: the
    declared defaults) when the pipeline has none."""
    _lock(pipeline.pk)
    active = revision_active(pipeline=pipeline)
    if active is not None:
        return active
    revision = revision_create(
        pipeline=pipeline,
        params=params or {},
        created_by=actor,
        rationale="initial configuration",
        note="initial",
    )
    revision = revision_approve(revision=revision, actor=actor, note="initial")
    return revision_transition(revision=revision, to_status=S.ACTIVE, actor=actor, note="initial")


@transaction.atomic
def revision_rollback_to(*, target: ConfigRevision, actor: Any = None) -> ConfigRevision:
    """Make ``target``'s configuration active again, as a new revision (source rollback).

    History is never rewritten: a new revision with the target's params, the current active
    revision as parent, is approved and activated at once (an admin's rollback is an emergency
    measure, not canaried); the replaced revision becomes rolled_back and every running canary
    of the pipeline is dropped. Rolling back to the active revision itself only drops the
    canaries (Conflict if there are none). A repeat of the same rollback while its result is
    still active changes nothing and returns that result, so double clicks and retries are safe.
    """
    pipeline = _lock(target.pipeline_id)
    target = ConfigRevision.objects.get(pk=target.pk)
    active = revision_active(pipeline=pipeline)
    canaries = list(ConfigRevision.objects.filter(pipeline=pipeline, status=S.CANARY))
    rationale = f"roll back to r{target.number}"
    for canary in canaries:
        revision_transition(
            revision=canary, to_status=S.ROLLED_BACK, actor=actor, note=f"aborted: {rationale}"
        )
    if active is not None and active.pk == target.pk:
        if not canaries:
            raise Conflict(f"r{target.number} is already active", code="already_active")
        return target
    if (
        active is not None
        and active.source == ConfigRevision.Source.ROLLBACK
        and active.evidence.get("rollback_to") == target.number
    ):
        return active  # the same rollback again: its result is still in force
    if not RevisionTransition.objects.filter(revision=target, to_status=S.ACTIVE).exists():
        raise Conflict(
            f"r{target.number} was never active; only an earlier active revision can be "
            "rolled back to",
            code="never_active",
        )
    revision = revision_create(
        pipeline=pipeline,
        params=dict(target.params),
        parent=active,
        source=ConfigRevision.Source.ROLLBACK,
        rationale=rationale,
        evidence={"rollback_to": target.number, "replaced": active.number if active else None},
        created_by=actor,
        note=rationale,
    )
    if active is not None:
        revision_transition(
            revision=active,
            to_status=S.ROLLED_BACK,
            actor=actor,
            note=f"rolled back to r{target.number} (as r{revision.number})",
        )
    revision = revision_approve(revision=revision, actor=actor, note=rationale)
    return revision_transition(revision=revision, to_status=S.ACTIVE, actor=actor, note=rationale)
