"""Feedback recorded asynchronously: checked and accepted at once, written by a worker.

`feedback_submit` checks everything that can be checked without writing (the generation exists
and is finished, ratings and issues are well formed) and stores a FeedbackSubmission; a Celery
task records it (`submission_record`, idempotent) and keeps the outcome on the row, which
`FeedbackIntegration.feedback_status()` reads back. A submission whose task was lost (the broker
restarted) is dispatched again by the reconciler, so nothing accepted is dropped.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from feedbackloop.errors import DomainError, InvalidInput, NotFound
from generation.selectors import generation_get
from reviews.models import FeedbackSubmission
from reviews.reviewers import reviewer_named
from reviews.services import (
    _check_issue,
    _check_ratings,
    comparison_record,
    issue_input,
    review_create,
)

K = FeedbackSubmission.Kind


def _generation(generation_id: Any):
    generation = generation_get(generation_id=generation_id)
    if generation is None:
        raise NotFound(f"no generation with id {generation_id!r}", code="unknown_generation")
    return generation


def feedback_submit(*, kind: str, payload: dict[str, Any]) -> FeedbackSubmission:
    """Check feedback now, record it later; returns the submission to look up."""
    if kind == K.REVIEW:
        generation = _generation(payload.get("generation_id"))
        _check_ratings(payload.get("ratings"), require_all=False, generation=generation)
        issues = [issue_input(i) for i in payload.get("issues") or ()]
        for issue in issues:
            _check_issue(issue, generation.duration_s)
        payload = {
            **payload,
            "generation_id": str(generation.pk),
            "ratings": {k: int(v) for k, v in payload["ratings"].items()},
            "issues": [issue.__dict__ for issue in issues],
        }
    elif kind == K.COMPARISON:
        for key in ("left_id", "right_id"):
            payload[key] = str(_generation(payload.get(key)).pk)
    else:
        raise InvalidInput(f"unknown feedback kind {kind!r}", code="invalid_kind")
    with transaction.atomic():
        submission = FeedbackSubmission.objects.create(kind=kind, payload=payload)
        submission_dispatch(submission=submission)
    return submission


def submission_dispatch(*, submission: FeedbackSubmission) -> None:
    from feedbackloop.dispatch import send_on_commit
    from reviews.tasks import feedback_record_task

    send_on_commit(feedback_record_task, str(submission.pk))


def submission_record(*, submission_id: str) -> FeedbackSubmission:
    """Write a pending submission (a no-op once recorded or failed)."""
    with transaction.atomic():
        submission = FeedbackSubmission.objects.select_for_update().get(pk=submission_id)
        if submission.status != FeedbackSubmission.Status.PENDING:
            return submission
        data = submission.payload
        try:
            with transaction.atomic():
                reviewer = reviewer_named(data.get("reviewer"))
                if submission.kind == K.REVIEW:
                    result = review_create(
                        reviewer=reviewer,
                        generation=_generation(data["generation_id"]),
                        ratings=data["ratings"],
                        comments=data.get("comments", ""),
                        issues=data.get("issues") or (),
                    )
                else:
                    result = comparison_record(
                        reviewer=reviewer,
                        left=_generation(data["left_id"]),
                        right=_generation(data["right_id"]),
                        winner=data["winner"],
                        dimension_winners=data.get("dimensions"),
                    )
        except DomainError as exc:
            submission.status = FeedbackSubmission.Status.FAILED
            submission.error = exc.message
        else:
            submission.status = FeedbackSubmission.Status.RECORDED
            submission.result_id = str(result.pk)
        submission.save(update_fields=["status", "error", "result_id", "updated_at"])
        return submission


def submissions_redispatch(*, older_than_seconds: int = 60) -> int:
    """Send again the submissions still pending after a while (their task was lost)."""
    from feedbackloop.dispatch import send
    from reviews.tasks import feedback_record_task

    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    pending = FeedbackSubmission.objects.filter(
        status=FeedbackSubmission.Status.PENDING, updated_at__lt=cutoff
    ).values_list("pk", flat=True)[:500]
    sent = 0
    for submission_id in pending:
        if not send(feedback_record_task, str(submission_id)):
            break
        FeedbackSubmission.objects.filter(pk=submission_id).update(updated_at=timezone.now())
        sent += 1
    return sent
