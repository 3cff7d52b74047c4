"""Email to the people who approve revisions when the improver proposes one."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.urls import reverse

from pipelines.models import APPROVE_PERMISSION, ConfigRevision


def approvers() -> list[str]:
    """Email addresses of active users who may approve revisions (superusers included)."""
    users = get_user_model().objects.with_perm(
        APPROVE_PERMISSION, is_active=True, include_superusers=True
    )
    return sorted({u.email for u in users if u.email})


def proposal_email_send(*, revision_id: int) -> int:
    """Tell each approver about a proposal still waiting for approval; returns emails sent.

    One message per approver, so no one sees the others' addresses. A revision that is no
    longer proposed (opened at once in library mode, or already decided) sends nothing.
    """
    revision = (
        ConfigRevision.objects.select_related("pipeline", "parent").filter(pk=revision_id).first()
    )
    if revision is None or revision.status != ConfigRevision.Status.PROPOSED:
        return 0
    recipients = approvers()
    if not recipients:
        return 0
    label = f"{revision.pipeline.slug} r{revision.number}"
    link = settings.SITE_URL.rstrip("/") + reverse(
        "admin:pipelines_configrevision_change", args=[revision.pk]
    )
    changes = "\n".join(
        f"  {key}: {old!r} → {new!r}" for key, (old, new) in revision.diff_from_parent().items()
    )
    predicted = revision.predicted_impact or {}
    body = "\n".join(
        [
            f"The improver proposed {label}"
            + (f" (from r{revision.parent.number})" if revision.parent else "")
            + ".",
            "",
            "Why:",
            revision.rationale or "(no rationale given)",
            "",
            "Changes:",
            changes or "  (none)",
            "",
            "Predicted impact:",
            *(f"  {k}: {v}" for k, v in predicted.items()),
            "",
            f"Approve or reject it: {link}",
        ]
    )
    subject = f"[feedbackloop] proposal {label} awaits approval"
    messages = [EmailMessage(subject=subject, body=body, to=[address]) for address in recipients]
    with get_connection() as connection:
        return connection.send_messages(messages) or 0
