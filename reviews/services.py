"""Writes for human feedback."""

from __future__ import annotations

import json
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from feedbackloop.errors import Conflict, InvalidInput
from generation.models import Generation
from reviews.models import (
    Comparison,
    ComparisonDimensionWinner,
    IssueReport,
    Rating,
    RatingDimension,
    Review,
    ReviewDraft,
    ReviewerExclusion,
)

# A draft is the browser's copy of a form in progress; anything bigger is not a review form.
DRAFT_MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class IssueInput:
    category: str
    start_s: float
    end_s: float
    severity: int = IssueReport.Severity.MINOR
    note: str = ""


SEVERITY_NAMES = {label: value for value, label in IssueReport.Severity.choices}


def issue_input(raw: IssueInput | Mapping[str, Any]) -> IssueInput:
    """An issue report from a plain dict (the seed's usage example is dict-based) or an
    IssueInput. Severity may be a name (minor, major, critical) or 1-3."""
    if isinstance(raw, IssueInput):
        return raw
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            "an issue must be a mapping with category, start_s and end_s", code="invalid_issue"
        )
    allowed = {"category", "start_s", "end_s", "severity", "note"}
    unknown = sorted(set(raw) - allowed)
    missing = sorted({"category", "start_s", "end_s"} - set(raw))
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"missing keys {missing}"
        raise InvalidInput(
            f"issue: {problem}; an issue has {', '.join(sorted(allowed))}", code="invalid_issue"
        )
    severity = raw.get("severity", IssueReport.Severity.MINOR)
    if isinstance(severity, str):
        if severity not in SEVERITY_NAMES:
            raise InvalidInput(
                f"issue severity {severity!r} is not one of {', '.join(SEVERITY_NAMES)} (or 1-3)",
                code="invalid_issue",
            )
        severity = SEVERITY_NAMES[severity]
    for key in ("start_s", "end_s"):
        if isinstance(raw[key], bool) or not isinstance(raw[key], numbers.Real):
            raise InvalidInput(f"issue {key} must be a number of seconds", code="invalid_issue")
    if isinstance(severity, bool) or not isinstance(severity, numbers.Integral):
        raise InvalidInput(
            "issue severity must be minor, major, critical or 1-3", code="invalid_issue"
        )
    note = raw.get("note", "")
    if not isinstance(note, str) or not isinstance(raw["category"], str):
        raise InvalidInput("issue category and note must be text", code="invalid_issue")
    return IssueInput(
        category=raw["category"],
        start_s=float(raw["start_s"]),
        end_s=float(raw["end_s"]),
        severity=int(severity),
        note=note,
    )


def _rating_value(slug: str, value: Any) -> int:
    """A 1-5 rating from any integral number (int, numpy integer, 4.0); never a bool."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        integral = None
    elif isinstance(value, numbers.Integral):
        integral = int(value)
    else:
        integral = int(value) if float(value).is_integer() else None
    if integral is None or not 1 <= integral <= 5:
        raise InvalidInput(
            f"rating for {slug!r} must be an integer from 1 to 5, got {value!r}",
            code="invalid_rating",
        )
    return integral


def _check_ratings(
    ratings: Mapping[str, Any], *, require_all: bool, generation: Generation | None = None
) -> list[tuple[RatingDimension, int]]:
    if not isinstance(ratings, Mapping) or not ratings:
        raise InvalidInput(
            "ratings must be a non-empty mapping of dimension to 1-5", code="invalid_ratings"
        )
    dimensions = RatingDimension.objects.filter(active=True)
    if generation is not None:
        # The global dimensions, and the generation's pipeline's own.
        dimensions = dimensions.filter(
            Q(pipeline__isnull=True) | Q(pipeline_id=generation.revision.pipeline_id)
        )
    dimensions = {d.slug: d for d in dimensions}
    known = ", ".join(sorted(dimensions))
    rows: list[tuple[RatingDimension, int]] = []
    for slug, value in ratings.items():
        if slug not in dimensions:
            raise InvalidInput(
                f"unknown rating dimension {slug!r}; known dimensions: {known}",
                code="unknown_dimension",
            )
        rows.append((dimensions[slug], _rating_value(slug, value)))
    if require_all:
        missing = sorted(set(dimensions) - set(ratings))
        if missing:
            raise InvalidInput(f"missing ratings for: {', '.join(missing)}", code="missing_rating")
    return rows


def _check_issue(issue: IssueInput, duration_s: float | None) -> None:
    if issue.category not in IssueReport.Category.values:
        raise InvalidInput(
            f"unknown issue category {issue.category!r}; "
            f"known: {', '.join(IssueReport.Category.values)}",
            code="invalid_issue",
        )
    if issue.severity not in IssueReport.Severity.values:
        raise InvalidInput(
            "issue severity must be 1 (minor), 2 (major) or 3 (critical)", code="invalid_issue"
        )
    if issue.start_s < 0 or issue.end_s < issue.start_s:
        raise InvalidInput(
            "an issue must end at or after its start, and start at 0 s or later",
            code="invalid_issue",
        )
    if duration_s is not None and issue.end_s > duration_s + 1e-3:
        raise InvalidInput(
            f"an issue cannot end at {issue.end_s:.2f} s; the video is {duration_s:.2f} s long",
            code="invalid_issue",
        )


def review_create(
    *,
    reviewer: AbstractBaseUser,
    generation: Generation,
    ratings: Mapping[str, Any],
    comments: str = "",
    issues: Iterable[IssueInput] = (),
    seconds_spent: float | None = None,
    require_all_dimensions: bool = False,
) -> Review:
    """Record one reviewer's feedback on a finished generation, all of it or nothing."""
    if generation.status != Generation.Status.SUCCEEDED:
        raise InvalidInput("only finished generations can be reviewed", code="not_finished")
    if not isinstance(comments, str):
        raise InvalidInput("comments must be text", code="invalid_comments")
    rows = _check_ratings(ratings, require_all=require_all_dimensions, generation=generation)
    issues = [issue_input(issue) for issue in issues]
    for issue in issues:
        _check_issue(issue, generation.duration_s)
    try:
        with transaction.atomic():
            review = Review.objects.create(
                reviewer=reviewer,
                generation=generation,
                comments=comments.strip(),
                seconds_spent=seconds_spent,
            )
            Rating.objects.bulk_create(
                Rating(review=review, dimension=dimension, value=value) for dimension, value in rows
            )
            IssueReport.objects.bulk_create(
                IssueReport(
                    review=review,
                    generation=generation,
                    category=i.category,
                    severity=i.severity,
                    start_s=i.start_s,
                    end_s=i.end_s,
                    note=i.note.strip(),
                )
                for i in issues
            )
    except IntegrityError as exc:
        if Review.objects.filter(reviewer=reviewer, generation=generation).exists():
            raise Conflict(
                f"{reviewer} has already reviewed generation {generation.id}",
                code="already_reviewed",
            ) from exc
        raise
    return review


@transaction.atomic
def comparison_record(
    *,
    reviewer: AbstractBaseUser,
    left: Generation,
    right: Generation,
    winner: str,
    dimension_winners: Mapping[str, str] | None = None,
    seconds_spent: float | None = None,
) -> Comparison:
    if left.pk == right.pk:
        raise InvalidInput(
            "a comparison needs two different generations", code="invalid_comparison"
        )
    for g in (left, right):
        if g.status != Generation.Status.SUCCEEDED:
            raise InvalidInput("only finished generations can be compared", code="not_finished")
    if winner not in Comparison.Winner.values:
        raise InvalidInput("winner must be left, right or tie", code="invalid_comparison")
    comparison = Comparison.objects.create(
        reviewer=reviewer, left=left, right=right, winner=winner, seconds_spent=seconds_spent
    )
    if dimension_winners:
        dimensions = {d.slug: d for d in RatingDimension.objects.filter(active=True)}
        rows = []
        for slug, verdict in dimension_winners.items():
            if slug not in dimensions:
                raise InvalidInput(
                    f"unknown rating dimension {slug!r}; "
                    f"known dimensions: {', '.join(sorted(dimensions))}",
                    code="unknown_dimension",
                )
            if verdict not in Comparison.Winner.values:
                raise InvalidInput(
                    f"winner for {slug!r} must be left, right or tie", code="invalid_comparison"
                )
            rows.append(
                ComparisonDimensionWinner(
                    comparison=comparison, dimension=dimensions[slug], winner=verdict
                )
            )
        ComparisonDimensionWinner.objects.bulk_create(rows)
    return comparison


def review_draft_save(
    *, reviewer: AbstractBaseUser, generation: Generation, data: Any
) -> ReviewDraft:
    """Store (or replace) the reviewer's draft of a review of this generation."""
    if generation.status != Generation.Status.SUCCEEDED:
        raise InvalidInput("only finished generations can be reviewed", code="not_finished")
    if not isinstance(data, dict):
        raise InvalidInput("a draft must be a JSON object", code="invalid_draft")
    if len(json.dumps(data)) > DRAFT_MAX_BYTES:
        raise InvalidInput(f"a draft is limited to {DRAFT_MAX_BYTES} bytes", code="invalid_draft")
    if Review.objects.filter(reviewer=reviewer, generation=generation).exists():
        raise Conflict("this generation is already reviewed", code="already_reviewed")
    draft, _ = ReviewDraft.objects.update_or_create(
        reviewer=reviewer, generation=generation, defaults={"data": data}
    )
    return draft


@transaction.atomic
def review_submit(
    *,
    reviewer: AbstractBaseUser,
    generation: Generation,
    ratings: Mapping[str, Any],
    comments: str = "",
    issues: Iterable[IssueInput] = (),
    seconds_spent: float | None = None,
) -> Review:
    """The reviewer UI's submit: a complete review and the end of its draft, in one transaction."""
    review = review_create(
        reviewer=reviewer,
        generation=generation,
        ratings=ratings,
        comments=comments,
        issues=issues,
        seconds_spent=seconds_spent,
        require_all_dimensions=True,
    )
    ReviewDraft.objects.filter(reviewer=reviewer, generation=generation).delete()
    return review


@transaction.atomic
def comparison_submit(
    *,
    reviewer: AbstractBaseUser,
    left: Generation,
    right: Generation,
    winner: str,
    dimension_winners: Mapping[str, str] | None = None,
    seconds_spent: float | None = None,
) -> Comparison:
    """Record a blind comparison once: the same reviewer judging the same pair again conflicts."""
    already = Comparison.objects.filter(
        Q(left=left, right=right) | Q(left=right, right=left), reviewer=reviewer
    )
    if already.exists():
        raise Conflict("this pair is already compared", code="already_compared")
    return comparison_record(
        reviewer=reviewer,
        left=left,
        right=right,
        winner=winner,
        dimension_winners=dimension_winners,
        seconds_spent=seconds_spent,
    )


# --- reviewers: accounts and exclusions ------------------------------------------------------

REVIEWER_GROUP = "reviewer"
REASON_MAX_CHARS = 2000


@transaction.atomic
def reviewer_create(
    *, username: str, email: str = "", password: str | None = None
) -> AbstractBaseUser:
    """A new account in the reviewer group. Without a password the account cannot log in
    until its owner follows an invitation link and chooses one."""
    User = get_user_model()
    username = (username or "").strip()
    if not username:
        raise InvalidInput("a username is needed", code="invalid_username")
    if User.objects.filter(username__iexact=username).exists():
        raise Conflict(f"there is already an account called {username!r}", code="username_taken")
    user = User(username=username, email=(email or "").strip())
    if password:
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        user.full_clean(exclude=["password"])
    except ValidationError as exc:
        raise InvalidInput(
            "; ".join(m for messages in exc.message_dict.values() for m in messages),
            code="invalid_user",
        ) from exc
    user.save()
    user.groups.add(Group.objects.get_or_create(name=REVIEWER_GROUP)[0])
    return user


def _reason(text: Any, what: str) -> str:
    text = (text or "").strip() if isinstance(text, str) else ""
    if not text:
        raise InvalidInput(f"say why ({what})", code="reason_required")
    if len(text) > REASON_MAX_CHARS:
        raise InvalidInput(
            f"the reason is {len(text)} characters; the limit is {REASON_MAX_CHARS}",
            code="reason_too_long",
        )
    return text


@transaction.atomic
def reviewer_exclusion_create(
    *, reviewer: AbstractBaseUser, actor: AbstractBaseUser, reason: str
) -> ReviewerExclusion:
    """Leave a reviewer's ratings and comparisons out of the analysis from now on."""
    reason = _reason(reason, "the exclusion is evidence for later readers")
    if ReviewerExclusion.objects.filter(reviewer=reviewer, revoked_at__isnull=True).exists():
        raise Conflict(f"{reviewer.get_username()} is already excluded", code="already_excluded")
    try:
        with transaction.atomic():
            return ReviewerExclusion.objects.create(
                reviewer=reviewer, created_by=actor, reason=reason
            )
    except IntegrityError as exc:  # a concurrent exclusion won the race
        raise Conflict(
            f"{reviewer.get_username()} is already excluded", code="already_excluded"
        ) from exc


@transaction.atomic
def reviewer_exclusion_revoke(
    *, exclusion: ReviewerExclusion, actor: AbstractBaseUser, reason: str
) -> ReviewerExclusion:
    """Bring an excluded reviewer back into the analysis; the exclusion stays on record."""
    reason = _reason(reason, "revoking an exclusion is recorded too")
    updated = ReviewerExclusion.objects.filter(pk=exclusion.pk, revoked_at__isnull=True).update(
        revoked_at=timezone.now(), revoked_by=actor, revoke_reason=reason, updated_at=timezone.now()
    )
    if not updated:
        raise Conflict("this exclusion was already revoked", code="already_revoked")
    exclusion.refresh_from_db()
    return exclusion
