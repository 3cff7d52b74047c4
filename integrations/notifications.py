"""Email to the people who approve revisions when the improver proposes some."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse

from pipelines.models import APPROVE_PERMISSION, ConfigRevision


def approvers() -> list[str]:
    """Email addresses of active users who may approve revisions (superusers included)."""
    users = get_user_model().objects.with_perm(
        APPROVE_PERMISSION,
        is_active=True,
        include_superusers=True,
        # The signing-in backend (settings list a second one for older sessions).
        backend=settings.AUTHENTICATION_BACKENDS[0],
    )
    return sorted({u.email for u in users if u.email})


def _batch_of(revision: ConfigRevision) -> list[ConfigRevision]:
    """The proposals made by the same improver step (its AnalysisRun), in number order; a
    revision made outside a step is a batch of one."""
    run = revision.analysis_runs.order_by("-id").first()
    if run is None:
        return [revision]
    return list(run.proposed.select_related("pipeline", "parent").order_by("number"))


def _describe(revision: ConfigRevision) -> list[str]:
    link = settings.SITE_URL.rstrip("/") + reverse(
        "admin:pipelines_configrevision_change", args=[revision.pk]
    )
    changes = [
        f"    {key}: {old!r} → {new!r}" for key, (old, new) in revision.diff_from_parent().items()
    ]
    predicted = [f"    {k}: {v}" for k, v in (revision.predicted_impact or {}).items()]
    parent = f" (from r{revision.parent.number})" if revision.parent else ""
    return [
        f"{revision.pipeline.slug} r{revision.number}{parent}",
        f"  Why: {revision.rationale or '(no rationale given)'}",
        "  Changes:",
        *(changes or ["    (none)"]),
        *(["  Predicted impact:", *predicted] if predicted else []),
        f"  Approve or reject: {link}",
        "",
    ]


def proposal_email_send(*, revision_id: int) -> int:
    """Tell each approver about the proposals still waiting; returns the emails sent.

    The improver proposes several revisions in one step: the step's first proposal sends one
    email for all of them (the others' tasks send nothing). One message per approver, so no one
    sees the others' addresses. Proposals no longer waiting (opened at once in library mode,
    or already decided) are left out; with none left nothing is sent.
    """
    revision = (
        ConfigRevision.objects.select_related("pipeline", "parent").filter(pk=revision_id).first()
    )
    if revision is None:
        return 0
    batch = _batch_of(revision)
    if batch[0].pk != revision.pk:
        return 0
    waiting = [r for r in batch if r.status == ConfigRevision.Status.PROPOSED]
    recipients = approvers()
    if not waiting or not recipients:
        return 0
    pipeline = waiting[0].pipeline.slug
    if len(waiting) == 1:
        subject = f"[feedbackloop] proposal {pipeline} r{waiting[0].number} awaits approval"
    else:
        numbers = ", ".join(f"r{r.number}" for r in waiting)
        subject = (
            f"[feedbackloop] {len(waiting)} proposals for {pipeline} await approval: {numbers}"
        )
    lines = [
        f"The improver proposed {len(waiting)} revision(s) of {pipeline}; each runs as an "
        "experiment arm once approved.",
        "",
    ]
    for proposal in waiting:
        lines.extend(_describe(proposal))
    body = "\n".join(lines)
    messages = [EmailMessage(subject=subject, body=body, to=[address]) for address in recipients]
    with get_connection() as connection:
        return connection.send_messages(messages) or 0
