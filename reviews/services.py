"""Writes for human feedback."""

from __future__ import annotations

import functools
import json
import numbers
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Model, Q
from django.utils import timezone

from feedbackloop.errors import Conflict, InvalidInput, NotFound
from generation.models import Generation
from generation.selectors import generation_get
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
from reviews.selectors import dimensions_compared

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


def review_record(
    *,
    reviewer: AbstractBaseUser,
    generation_id: object,
    ratings: Mapping[str, Any],
    comments: str = "",
    issues: Iterable[IssueInput] = (),
    seconds_spent: float | None = None,
) -> Review:
    """review_create() for a generation known by its id: the API's submission, built for load.

    On PostgreSQL a well-formed submission is written by one SQL statement that also checks what
    review_create() checks (a finished generation, active dimensions, issues inside the video,
    one review per reviewer and generation) and writes the review, its ratings and its issue
    reports, or nothing. Anything it does not write goes through review_create(), which says
    why (or writes it, when the generation finished in between): the errors are the same.
    """
    issues = [issue_input(issue) for issue in issues]
    try:
        gid = uuid.UUID(str(generation_id))
    except ValueError:
        gid = None
    if (
        connection.vendor == "postgresql"
        and gid is not None
        and _well_formed(ratings, comments, issues)
    ):
        review = _review_insert(
            reviewer=reviewer,
            generation_id=gid,
            ratings=ratings,
            comments=comments,
            issues=issues,
            seconds_spent=seconds_spent,
        )
        if review is not None:
            return review
    generation = generation_get(generation_id=generation_id)
    if generation is None:
        raise NotFound(f"no generation with id {generation_id}", code="unknown_generation")
    return review_create(
        reviewer=reviewer,
        generation=generation,
        ratings=ratings,
        comments=comments,
        issues=issues,
        seconds_spent=seconds_spent,
    )


def _well_formed(ratings: Any, comments: Any, issues: list[IssueInput]) -> bool:
    """True when nothing but the database's state can make this submission fail."""
    if not isinstance(ratings, Mapping) or not ratings or not isinstance(comments, str):
        return False
    for value in ratings.values():
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            return False
    return all(
        i.category in IssueReport.Category.values
        and i.severity in IssueReport.Severity.values
        and 0 <= i.start_s <= i.end_s
        for i in issues
    )


def _columns(model: type[Model], skip: Iterable[str] = ()) -> list[Any]:
    return [f for f in model._meta.local_concrete_fields if f.name not in skip]


def _values(instance: Model, fields: list[Any]) -> list[Any]:
    return [f.get_db_prep_save(f.pre_save(instance, add=True), connection) for f in fields]


def _fresh_values(fields: list[Any], now: Any) -> list[Any]:
    """What _values() gives for a new, unsaved instance, without building one: `now` for the
    auto_now(_add) timestamps (the same moment as the review's), each other field's default."""
    return [
        f.get_db_prep_save(
            now
            if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
            else f.get_default(),
            connection,
        )
        for f in fields
    ]


@functools.cache
def _insert_statement(vendor: str) -> tuple[str, list[Any], list[Any], list[Any]]:
    """The one-statement write, built once from the models' tables, columns and types."""
    q = connection.ops.quote_name
    revision_model = Generation._meta.get_field("revision").related_model

    def table(model: type[Model]) -> str:
        return q(model._meta.db_table)

    def col(model: type[Model], name: str) -> str:
        return q(model._meta.get_field(name).column)

    def cols(model: type[Model], names: Iterable[str]) -> str:
        return ", ".join(col(model, n) for n in names)

    def typed(fields: list[Any]) -> str:
        # Typed placeholders: INSERT ... SELECT does not coerce literals to the column types.
        return "".join(f", CAST(%s AS {f.cast_db_type(connection)})" for f in fields)

    def columns_of(fields: list[Any]) -> str:
        return "".join(f", {q(f.column)}" for f in fields)

    review_fields = _columns(Review)
    # Columns the ORM fills from the model (created_at, ...): their values come from an unsaved
    # instance, like the ORM's; the others come from the statement.
    named = {"id", "review", "dimension", "value", "generation", "category", "severity"}
    rating_fields = _columns(Rating, skip=named)
    issue_fields = _columns(IssueReport, skip=named | {"start_s", "end_s", "note"})
    issue_columns = cols(
        IssueReport, ["review", "generation", "category", "severity", "start_s", "end_s", "note"]
    )
    generation_type = IssueReport._meta.get_field("generation").cast_db_type(connection)
    g_pk, g_status, g_duration = (
        col(Generation, "id"),
        col(Generation, "status"),
        col(Generation, "duration_s"),
    )
    g_revision, r_pk = col(Generation, "revision"), col(revision_model, "id")
    r_pipeline, d_pipeline = col(revision_model, "pipeline"), col(RatingDimension, "pipeline")
    sql = f"""
        WITH gen AS (
            SELECT r.{r_pipeline} AS pipeline_id
            FROM {table(Generation)} g JOIN {table(revision_model)} r ON r.{r_pk} = g.{g_revision}
            WHERE g.{g_pk} = %s AND g.{g_status} = %s
                AND (%s::float8 IS NULL OR g.{g_duration} IS NULL
                     OR %s::float8 <= g.{g_duration} + 0.001)
        ), dims AS (
            SELECT d.{col(RatingDimension, "id")} AS id, v.value
            FROM unnest(%s::text[], %s::int[]) AS v(slug, value)
            JOIN {table(RatingDimension)} d ON d.{col(RatingDimension, "slug")} = v.slug
                AND d.{col(RatingDimension, "active")}
                AND (d.{d_pipeline} IS NULL OR d.{d_pipeline} = (SELECT pipeline_id FROM gen))
        ), review AS (
            INSERT INTO {table(Review)} ({", ".join(q(f.column) for f in review_fields)})
            SELECT {typed(review_fields).removeprefix(", ")}
            WHERE EXISTS (SELECT 1 FROM gen) AND (SELECT count(*) FROM dims) = %s
            ON CONFLICT DO NOTHING
            RETURNING {col(Review, "id")} AS id
        ), issues AS (
            INSERT INTO {table(IssueReport)} ({issue_columns}{columns_of(issue_fields)})
            SELECT review.id, CAST(%s AS {generation_type}), i.category, i.severity, i.start_s,
                i.end_s, i.note{typed(issue_fields)}
            FROM review, unnest(%s::text[], %s::int[], %s::float8[], %s::float8[], %s::text[])
                AS i(category, severity, start_s, end_s, note)
        )
        INSERT INTO {table(Rating)} ({cols(Rating, ["review", "dimension", "value"])}
            {columns_of(rating_fields)})
        SELECT review.id, dims.id, dims.value{typed(rating_fields)}
        FROM review, dims
    """
    return sql, review_fields, rating_fields, issue_fields


def _review_insert(
    *,
    reviewer: AbstractBaseUser,
    generation_id: uuid.UUID,
    ratings: Mapping[str, int],
    comments: str,
    issues: list[IssueInput],
    seconds_spent: float | None,
) -> Review | None:
    """Write the review, its ratings and issues in one statement; None if a check failed.

    One statement is one transaction, and it saves the round trips and ORM work that
    dominated the submission's cost (see benchmarks/ratings_load.py). The unique constraint
    and the rating CHECK stay in force; ON CONFLICT DO NOTHING turns a second review by the
    same reviewer into "nothing written", which review_create() then reports as a conflict.
    The checks are review_create()'s: a succeeded generation, issues inside the video, every
    dimension active and either global or the generation's pipeline's.
    """
    sql, review_fields, rating_fields, issue_fields = _insert_statement(connection.vendor)
    review = Review(
        reviewer=reviewer,
        generation_id=generation_id,
        comments=comments.strip(),
        seconds_spent=seconds_spent,
    )
    review_values = _values(review, review_fields)  # sets review.created_at
    slugs = list(ratings)
    max_end = max((i.end_s for i in issues), default=None)
    params = [
        generation_id,
        Generation.Status.SUCCEEDED.value,
        max_end,
        max_end,
        slugs,
        [ratings[s] for s in slugs],
        *review_values,
        len(slugs),
        generation_id,
        *_fresh_values(issue_fields, review.created_at),
        [i.category for i in issues],
        [int(i.severity) for i in issues],
        [float(i.start_s) for i in issues],
        [float(i.end_s) for i in issues],
        [i.note.strip() for i in issues],
        *_fresh_values(rating_fields, review.created_at),
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount != len(slugs):
            return None
    review._state.adding = False
    review._state.db = connection.alias
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
        # The global dimensions, and a pipeline's own only when both videos are that pipeline's.
        dimensions = {d.slug: d for d in dimensions_compared(left=left, right=right)}
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
