"""The reviewer's browser UI: the queue, the review page, drafts and blind comparisons.

Views validate with the forms in reviews/forms.py, call one service and map domain errors to
form errors or HTTP codes. Reads go through reviews/selectors.py.
"""

from __future__ import annotations

import json
import random
import secrets
import uuid
from typing import Any

from django.contrib import messages
from django.contrib.sessions.backends.base import SessionBase
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from feedbackloop.errors import Conflict, InvalidInput
from generation.models import Generation
from generation.views import file_response, reviewer_required
from pipelines.models import Pipeline
from reviews import selectors, services
from reviews.forms import ComparisonForm, ReviewForm, issue_formset

PLAYBACK_RATES = ["0.25", "0.5", "0.75", "1", "1.25", "1.5", "2"]
# Blind comparisons in progress live in the session: token → the pair and which side is which.
SESSION_COMPARISONS = "reviews.comparisons"
SESSION_COMPARISONS_MAX = 20


def _reviewable(generation_id: Any) -> Generation:
    """A finished generation with a video; anything else (even for staff) is not reviewable."""
    generation = selectors.generations_reviewable().filter(pk=generation_id).first()
    if generation is None:
        raise Http404("no finished generation with this id")
    return generation


def _player(generation: Generation, *, src: str, poster: str | None, label: str = "") -> dict:
    return {
        "src": src,
        "poster": poster,
        "label": label,
        "width": generation.width,
        "height": generation.height,
    }


# --- queue --------------------------------------------------------------------------------------


SESSION_PIPELINE = "reviews.pipeline"


def _pipeline_filter(request: HttpRequest) -> str | None:
    """The pipeline a reviewer keeps to (``?pipeline=slug``; ``?pipeline=`` for all), kept in
    the session so that "next" follows it."""
    if "pipeline" in request.GET:
        slug = request.GET["pipeline"].strip()
        if slug and not Pipeline.objects.filter(slug=slug).exists():
            raise Http404("no such pipeline")
        request.session[SESSION_PIPELINE] = slug or None
    return request.session.get(SESSION_PIPELINE)


@require_GET
@reviewer_required
def queue(request: HttpRequest) -> HttpResponse:
    pipeline = _pipeline_filter(request)
    next_generation = selectors.review_queue_next(reviewer=request.user, pipeline=pipeline)
    pair = selectors.comparison_pair_next(reviewer=request.user, pipeline=pipeline)
    return render(
        request,
        "reviews/queue.html",
        {
            "progress": selectors.reviewer_progress(reviewer=request.user),
            "next_generation": next_generation,
            "comparison_available": pair is not None,
            "pipelines": Pipeline.objects.order_by("slug") if Pipeline.objects.count() > 1 else [],
            "pipeline": pipeline or "",
        },
    )


@require_GET
@reviewer_required
def review_next(request: HttpRequest) -> HttpResponse:
    generation = selectors.review_queue_next(
        reviewer=request.user, pipeline=_pipeline_filter(request)
    )
    if generation is None:
        messages.info(request, "Nothing is waiting for your review right now.")
        return redirect("reviews:queue")
    return redirect("reviews:review", generation_id=generation.id)


# --- review -------------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@reviewer_required
def review(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponse:
    generation = _reviewable(generation_id)
    if selectors.review_exists(reviewer=request.user, generation=generation):
        # Also the second request of a double submit: the first one saved everything.
        messages.info(request, "Your review of that video is saved; here is the next one.")
        return redirect("reviews:next")

    dimensions = list(selectors.dimensions_for(pipeline=generation.revision.pipeline))
    draft = None
    status = 200
    if request.method == "POST":
        form = ReviewForm(request.POST, dimensions=dimensions)
        issues = issue_formset(request.POST, duration_s=generation.duration_s)
        if form.is_valid() and issues.is_valid():
            try:
                services.review_submit(
                    reviewer=request.user,
                    generation=generation,
                    ratings=form.ratings(),
                    comments=form.cleaned_data["comments"],
                    issues=[f.issue_input() for f in issues.forms],
                    seconds_spent=form.cleaned_data["seconds_spent"],
                )
            except Conflict:
                messages.info(request, "Your review of that video is saved; here is the next one.")
                return redirect("reviews:next")
            except InvalidInput as exc:
                form.add_error(None, exc.message)
            else:
                messages.success(request, "Review saved. Here is the next video.")
                return redirect("reviews:next")
        status = 400
    else:
        form = ReviewForm(dimensions=dimensions)
        issues = issue_formset(duration_s=generation.duration_s)
        draft = selectors.review_draft_get(reviewer=request.user, generation=generation)

    poster = reverse("generation:poster", args=[generation.id]) if generation.poster else None
    context = {
        "generation": generation,
        "form": form,
        "issues": issues,
        "progress": selectors.reviewer_progress(reviewer=request.user),
        "videos": [
            _player(
                generation,
                src=reverse("generation:video", args=[generation.id]),
                poster=poster,
            )
        ],
        "fps": generation.fps or 25,
        "duration": generation.duration_s or 0,
        "rates": PLAYBACK_RATES,
        "draft_data": {
            "data": draft.data if draft else None,
            "updated_at": draft.updated_at.isoformat() if draft else None,
        },
        "restore_draft": not form.is_bound,
        "storage_key": f"feedbackloop.draft.{request.user.pk}.{generation.id}",
    }
    return render(request, "reviews/review.html", context, status=status)


@require_http_methods(["GET", "POST"])
@reviewer_required(json=True)
def review_draft(request: HttpRequest, generation_id: uuid.UUID) -> JsonResponse:
    """The signed-in reviewer's own draft of this review; nobody else's is reachable."""
    generation = _reviewable(generation_id)
    if request.method == "GET":
        draft = selectors.review_draft_get(reviewer=request.user, generation=generation)
        if draft is None:
            return JsonResponse({"error": "no draft"}, status=404)
        return JsonResponse({"data": draft.data, "updated_at": draft.updated_at.isoformat()})
    try:
        payload = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return JsonResponse({"error": "the body must be JSON"}, status=400)
    data = payload.get("data") if isinstance(payload, dict) else None
    try:
        draft = services.review_draft_save(reviewer=request.user, generation=generation, data=data)
    except InvalidInput as exc:
        return JsonResponse({"error": exc.message, "code": exc.code}, status=400)
    except Conflict as exc:
        return JsonResponse({"error": exc.message, "code": exc.code}, status=409)
    return JsonResponse({"updated_at": draft.updated_at.isoformat()})


# --- blind comparisons ----------------------------------------------------------------------------


def _assignments(session: SessionBase) -> dict[str, dict[str, str]]:
    return dict(session.get(SESSION_COMPARISONS, {}))


def _assign(session: SessionBase, pair: tuple[Generation, Generation]) -> str:
    """A token for this pair with its sides drawn at random; the same pair keeps its token."""
    assignments = _assignments(session)
    ids = {str(pair[0].id), str(pair[1].id)}
    for token, shown in assignments.items():
        if {shown["left"], shown["right"]} == ids:
            return token
    left, right = random.sample(pair, 2)
    token = secrets.token_urlsafe(12)
    assignments[token] = {
        "left": str(left.id),
        "right": str(right.id),
        "shown_at": timezone.now().isoformat(),
    }
    while len(assignments) > SESSION_COMPARISONS_MAX:
        assignments.pop(next(iter(assignments)))
    session[SESSION_COMPARISONS] = assignments
    return token


def _assigned_pair(request: HttpRequest, token: str) -> tuple[Generation, Generation] | None:
    shown = _assignments(request.session).get(token)
    if shown is None:
        return None
    rows = {
        str(g.id): g
        for g in selectors.generations_reviewable().filter(pk__in=[shown["left"], shown["right"]])
    }
    if len(rows) != 2:
        return None
    return rows[shown["left"]], rows[shown["right"]]


def _forget(session: SessionBase, token: str) -> None:
    assignments = _assignments(session)
    assignments.pop(token, None)
    session[SESSION_COMPARISONS] = assignments


@require_GET
@reviewer_required
def compare_next(request: HttpRequest) -> HttpResponse:
    pair = selectors.comparison_pair_next(reviewer=request.user, pipeline=_pipeline_filter(request))
    if pair is None:
        messages.info(request, "No pairs are waiting for a comparison right now.")
        return redirect("reviews:queue")
    return redirect("reviews:compare", token=_assign(request.session, pair))


@require_http_methods(["GET", "POST"])
@reviewer_required
def compare(request: HttpRequest, token: str) -> HttpResponse:
    pair = _assigned_pair(request, token)
    if pair is None:
        if request.method == "POST":
            # The first submit already recorded it (or the pair is gone): move on.
            messages.info(request, "That comparison is saved; here is the next one.")
            return redirect("reviews:compare_next")
        raise Http404("no comparison in progress with this token")
    left, right = pair
    dimensions = list(selectors.dimensions_compared(left=left, right=right))
    status = 200
    if request.method == "POST":
        form = ComparisonForm(request.POST, dimensions=dimensions)
        if form.is_valid():
            try:
                services.comparison_submit(
                    reviewer=request.user,
                    left=left,
                    right=right,
                    winner=form.cleaned_data["winner"],
                    dimension_winners=form.dimension_winners(),
                    seconds_spent=form.cleaned_data["seconds_spent"],
                )
            except Conflict:
                _forget(request.session, token)
                messages.info(request, "That comparison is saved; here is the next one.")
                return redirect("reviews:compare_next")
            except InvalidInput as exc:
                form.add_error(None, exc.message)
            else:
                _forget(request.session, token)
                messages.success(request, "Comparison saved.")
                return redirect("reviews:compare_next")
        status = 400
    else:
        form = ComparisonForm(dimensions=dimensions)

    videos = []
    for side, generation in (("left", left), ("right", right)):
        poster = (
            reverse("reviews:compare_poster", args=[token, side]) if generation.poster else None
        )
        videos.append(
            _player(
                generation,
                src=reverse("reviews:compare_video", args=[token, side]),
                poster=poster,
                label=side.capitalize(),
            )
        )
    context = {
        "token": token,
        "prompt": left.prompt,
        "form": form,
        "videos": videos,
        "fps": left.fps or 25,
        "duration": max(left.duration_s or 0, right.duration_s or 0),
        "rates": PLAYBACK_RATES,
        "progress": selectors.reviewer_progress(reviewer=request.user),
    }
    return render(request, "reviews/compare.html", context, status=status)


@require_http_methods(["GET", "HEAD"])
@reviewer_required
def compare_media(request: HttpRequest, token: str, side: str, kind: str) -> HttpResponseBase:
    """A side's video or poster under the comparison's opaque token: no id, no revision."""
    pair = _assigned_pair(request, token)
    if pair is None or side not in ("left", "right"):
        raise Http404("no comparison in progress with this token")
    generation = pair[0] if side == "left" else pair[1]
    field_file = generation.video if kind == "video" else generation.poster
    if not field_file:
        raise Http404("no such file")
    return file_response(request, field_file)
