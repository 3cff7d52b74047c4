"""Staff pages for evidence: one generation with all its reviews, and the reviewers.

- /generations/<id>/: the video with every reviewer's issue markers on one timeline, ratings
  per reviewer next to that reviewer's estimated bias, comments, metrics with per-frame plots
  over time, params and revision.
- /reviewers/: invite or create reviewers; per-reviewer volume, time per review, bias and
  agreement with the panel, with outliers flagged.
- /reviewers/<id>/: one reviewer, and their exclusion from the analysis (recorded, reversible).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.decorators.http import require_GET, require_http_methods

from feedbackloop.errors import DomainError
from generation.frame_series import frame_series_cached, frame_series_get
from generation.models import Generation, MetricValue
from generation.views import staff_required
from improvements import charts
from improvements.forms import ExclusionForm, ReviewerCreateForm, RevokeForm
from improvements.reviewer_stats import reviewer_statistics, reviewer_statistics_get
from reviews import selectors as review_selectors
from reviews import services as review_services
from reviews.models import Review

SERIES = (
    # key, title, y-axis label (short: it stands beside the chart), what the unit means
    ("sharpness", "Sharpness over time", "sharpness", "Laplacian variance, higher is sharper"),
    ("flicker", "Flicker over time", "luma change", "mean-luma change in code values"),
    ("motion", "Motion over time", "motion (px/frame)", "optical flow at the 360p scale"),
)


def _admin_url(obj: Any) -> str | None:
    meta = obj._meta
    try:
        return reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    except NoReverseMatch:
        return None


def series_charts(series: dict[str, Any]) -> list[charts.Chart]:
    duration = series.get("duration_s")
    return [
        charts.line_chart(
            series.get("t", []),
            series.get(key, []),
            title=title,
            description=f"{y_label} along the video ({note})",
            x_label="time in the video (s)",
            y_label=y_label,
            x_max=duration,
            colour=charts.PALETTE[index],
        )
        for index, (key, title, y_label, note) in enumerate(SERIES)
    ]


def _generation(generation_id: uuid.UUID) -> Generation:
    generation = (
        Generation.objects.select_related("revision", "claimed_by", "requested_by")
        .filter(pk=generation_id)
        .first()
    )
    if generation is None:
        raise Http404("no such generation")
    return generation


@require_GET
@staff_required
def generation_detail(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    generation = _generation(generation_id)
    reviews = list(
        Review.objects.filter(generation=generation)
        .select_related("reviewer")
        .prefetch_related("ratings__dimension", "issues")
        .order_by("created_at", "id")
    )
    rated = {r.dimension_id for review in reviews for r in review.ratings.all()}
    # The dimensions this video was rated on (all active ones before any review).
    dimensions = [
        d
        for d in review_selectors.dimensions_for(
            pipeline=generation.revision.pipeline, active_only=False
        ).order_by("order", "slug")
        if d.id in rated or (d.active and not rated)
    ]
    stats = {s.id: s for s in reviewer_statistics()}
    rows = []
    corrected: dict[str, list[float]] = {d.slug: [] for d in dimensions}
    raw: dict[str, list[int]] = {d.slug: [] for d in dimensions}
    for review in reviews:
        person = stats.get(review.reviewer_id)
        values = {r.dimension.slug: r.value for r in review.ratings.all()}
        cells = []
        for d in dimensions:
            value = values.get(d.slug)
            offset = person.bias_by_dimension.get(d.slug) if person else None
            cells.append({"value": value, "offset": offset})
            if value is not None:
                raw[d.slug].append(value)
                corrected[d.slug].append(value - (offset or 0.0))
        rows.append({"review": review, "cells": cells, "stats": person})
    means = [
        {
            "raw": sum(raw[d.slug]) / len(raw[d.slug]) if raw[d.slug] else None,
            "corrected": (
                sum(corrected[d.slug]) / len(corrected[d.slug]) if corrected[d.slug] else None
            ),
        }
        for d in dimensions
    ]
    lanes = [
        {
            "reviewer": review.reviewer,
            "issues": sorted(review.issues.all(), key=lambda i: (i.start_s, i.id)),
        }
        for review in reviews
    ]
    issues = sorted(
        ((issue, review.reviewer) for review in reviews for issue in review.issues.all()),
        key=lambda pair: (pair[0].start_s, pair[0].id),
    )
    metric_rows = list(
        MetricValue.objects.filter(generation=generation).order_by("name", "source", "-version")
    )
    series = frame_series_cached(generation=generation)
    series_error = ""
    if series is None and request.GET.get("series") == "1":
        series, series_error = _series_or_error(generation)
    revision = generation.revision
    context = {
        "generation": generation,
        "revision": revision,
        "revision_admin_url": _admin_url(revision),
        "generation_admin_url": _admin_url(generation),
        "dimensions": dimensions,
        "rows": rows,
        "means": means,
        "lanes": lanes,
        "issues": issues,
        "comments": [r for r in reviews if r.comments.strip()],
        "metrics": metric_rows,
        "params": sorted((generation.params or {}).items()),
        "series_charts": series_charts(series) if series else None,
        "series_error": series_error,
        "videos": [
            {
                "src": reverse("generation:video", args=[generation.id]),
                "poster": reverse("generation:poster", args=[generation.id])
                if generation.poster
                else None,
                "label": "",
                "width": generation.width,
                "height": generation.height,
            }
        ]
        if generation.video
        else [],
        "fps": generation.fps or 25,
        "duration": generation.duration_s or 0,
        "rates": ["0.25", "0.5", "1", "1.5", "2"],
    }
    return render(request, "improvements/generation.html", context)


def _series_or_error(generation: Generation) -> tuple[dict[str, Any] | None, str]:
    from videometrics import VideoMetricsError

    try:
        return frame_series_get(generation=generation), ""
    except VideoMetricsError as exc:
        return None, f"The video could not be measured: {exc}"


@require_GET
@staff_required
def generation_series(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    """The per-frame plots as an HTML fragment; computed and stored on the first request."""
    generation = _generation(generation_id)
    series, error = _series_or_error(generation)
    return render(
        request,
        "improvements/_series.html",
        {"series_charts": series_charts(series) if series else None, "series_error": error},
    )


# --- reviewers ------------------------------------------------------------------------------


def _invite_url(request: HttpRequest, user: Any) -> str:
    path = reverse(
        "invite_accept",
        args=[
            urlsafe_base64_encode(force_bytes(user.pk)),
            default_token_generator.make_token(user),
        ],
    )
    return request.build_absolute_uri(path)


@require_http_methods(["GET", "POST"])
@staff_required
def reviewer_list(request: HttpRequest) -> HttpResponse:
    form = ReviewerCreateForm(request.POST or None)
    status = 200
    invite = None
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = review_services.reviewer_create(
                    username=data["username"],
                    email=data["email"],
                    password=data["password"] or None,
                )
            except DomainError as exc:
                form.add_error("username", exc.message)
            else:
                if data["password"]:
                    messages.success(request, f"{user.get_username()} can now log in and review.")
                    return redirect("improvements:reviewers")
                invite = {"user": user, "url": _invite_url(request, user)}
                form = ReviewerCreateForm()
        if invite is None:
            status = 400
    people = reviewer_statistics()
    return render(
        request,
        "improvements/reviewers.html",
        {
            "people": people,
            "flagged": sum(1 for p in people if p.flags),
            "excluded": sum(1 for p in people if p.excluded),
            "form": form,
            "invite": invite,
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@staff_required
def reviewer_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    person = get_user_model().objects.filter(pk=user_id).first()
    if person is None:
        raise Http404("no such reviewer")
    current = review_selectors.reviewer_exclusion_current(reviewer=person)
    exclude_form = ExclusionForm(prefix="exclude")
    revoke_form = RevokeForm(prefix="revoke")
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "exclude":
                exclude_form = ExclusionForm(request.POST, prefix="exclude")
                if exclude_form.is_valid():
                    review_services.reviewer_exclusion_create(
                        reviewer=person,
                        actor=request.user,
                        reason=exclude_form.cleaned_data["reason"],
                    )
                    messages.success(
                        request,
                        f"{person.get_username()} is excluded from the analysis from the next "
                        "run on. Their reviews stay on record.",
                    )
                    return redirect("improvements:reviewer", user_id=person.pk)
            elif action == "revoke" and current is not None:
                revoke_form = RevokeForm(request.POST, prefix="revoke")
                if revoke_form.is_valid():
                    review_services.reviewer_exclusion_revoke(
                        exclusion=current,
                        actor=request.user,
                        reason=revoke_form.cleaned_data["reason"],
                    )
                    messages.success(
                        request,
                        f"{person.get_username()} counts in the analysis again from the next run.",
                    )
                    return redirect("improvements:reviewer", user_id=person.pk)
            else:
                messages.error(request, "Nothing to do: the page was out of date. Here it is now.")
                return redirect("improvements:reviewer", user_id=person.pk)
        except DomainError as exc:
            messages.error(request, exc.message)
            return redirect("improvements:reviewer", user_id=person.pk)
        status = 400
    recent = list(
        Review.objects.filter(reviewer=person)
        .select_related("generation")
        .prefetch_related("ratings__dimension")
        .order_by("-created_at", "id")[:20]
    )
    return render(
        request,
        "improvements/reviewer.html",
        {
            "person": person,
            "stats": reviewer_statistics_get(reviewer_id=person.pk),
            "current": current,
            "history": list(review_selectors.reviewer_exclusions(reviewer=person)),
            "exclude_form": exclude_form,
            "revoke_form": revoke_form,
            "recent": recent,
        },
        status=status,
    )
