"""Browser views of generations: video and poster files with HTTP Range, and the staff list.

Reviewers and staff may watch videos; reviewers only finished ones. In production the bytes are
handed to nginx with X-Accel-Redirect (settings.VIDEO_ACCEL_REDIRECT_PREFIX, see
docs/deploy-nginx.md) after the permission check here, or, with media in object storage, the
player is redirected to a presigned URL of the bucket; otherwise they are streamed from storage
in chunks, one byte range at a time, so seeking in a large file never reads the whole file.
"""

from __future__ import annotations

import mimetypes
import re
import uuid
from collections.abc import Callable, Iterator
from functools import wraps
from typing import IO, Any
from urllib.parse import quote

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models.fields.files import FieldFile
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
    JsonResponse,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import http_date
from django.views.decorators.http import require_GET, require_http_methods

from feedbackloop.errors import DomainError
from feedbackloop.roles import is_reviewer
from generation import selectors
from generation.forms import GenerationCreateForm, GenerationFilterForm
from generation.models import Generation, WorkerToken
from generation.object_storage import presigned_get, presigning
from generation.selectors import generation_get
from generation.services.requests import job_request
from pipelines.models import ConfigRevision

CHUNK_BYTES = 256 * 1024
PROGRESS_IDS_MAX = 200
_SINGLE_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


# --- who may see what -----------------------------------------------------------------------


def _guarded(check: Callable[[Any], bool], *, json: bool) -> Callable:
    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            if not request.user.is_authenticated:
                if json:
                    return JsonResponse({"error": "log in first"}, status=401)
                return redirect_to_login(request.get_full_path())
            if not check(request.user):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


def reviewer_required(view: Callable | None = None, *, json: bool = False) -> Callable:
    """Logged in and a reviewer or staff: anonymous users go to the login page (JSON: 401),
    anyone else gets 403."""
    decorator = _guarded(is_reviewer, json=json)
    return decorator(view) if view is not None else decorator


def staff_required(view: Callable | None = None, *, json: bool = False) -> Callable:
    decorator = _guarded(lambda user: user.is_active and user.is_staff, json=json)
    return decorator(view) if view is not None else decorator


def generation_visible(request: HttpRequest, generation_id: Any) -> Generation:
    """The generation if this user may watch it, else 404: reviewers see finished ones only."""
    generation = generation_get(generation_id=generation_id)
    if generation is None:
        raise Http404("no such generation")
    if generation.status != Generation.Status.SUCCEEDED and not request.user.is_staff:
        raise Http404("no such generation")
    return generation


# --- files with Range -------------------------------------------------------------------------


class RangeNotSatisfiable(Exception):
    pass


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive (first, last) byte positions a single-range Range header asks for.

    None means "send the whole file": no header, a malformed one, or several ranges (RFC 9110
    lets a server ignore Range). A range starting past the end raises RangeNotSatisfiable.
    """
    match = _SINGLE_RANGE.match(header.strip()) if header else None
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        return None
    if not first_text:
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(size - suffix, 0), size - 1
    first = int(first_text)
    last = int(last_text) if last_text else size - 1
    if last_text and last < first:
        return None  # an invalid range-spec: ignore the header
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(last, size - 1)


class FileSlice:
    """Iterates over bytes first..first+length-1 of an open file in chunks; closes it after."""

    def __init__(self, handle: IO[bytes], first: int, length: int) -> None:
        self.handle, self.first, self.length = handle, first, length

    def __iter__(self) -> Iterator[bytes]:
        self.handle.seek(self.first)
        remaining = self.length
        while remaining > 0:
            chunk = self.handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk

    def close(self) -> None:
        self.handle.close()


def file_response(request: HttpRequest, field_file: FieldFile) -> HttpResponseBase:
    """Answer GET/HEAD for a stored file, honouring a single byte Range (206/416)."""
    name = field_file.name
    if presigning(field_file.storage):
        # Object storage serves the bytes and the Range requests from a presigned URL, valid
        # for MEDIA_PRESIGN_SECONDS; the permission check above is what hands it out.
        response = HttpResponseRedirect(presigned_get(name, field_file.storage))
        response["Cache-Control"] = "private, max-age=60"
        return response
    content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
    prefix = settings.VIDEO_ACCEL_REDIRECT_PREFIX
    if prefix:
        # nginx serves the bytes (and the Range) from its internal location.
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + quote(name)
        response["Cache-Control"] = "private, max-age=86400"
        return response

    storage = field_file.storage
    try:
        size = storage.size(name)
    except (FileNotFoundError, OSError) as exc:
        raise Http404("the file is missing") from exc
    validators = _validators(storage, name, size)

    range_header = request.headers.get("Range", "")
    if_range = request.headers.get("If-Range")
    if if_range and if_range not in validators.values():
        range_header = ""  # the file changed since the client's copy: send all of it
    try:
        wanted = byte_range(range_header, size)
    except RangeNotSatisfiable:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        response["Accept-Ranges"] = "bytes"
        return response

    first, last = wanted if wanted is not None else (0, size - 1)
    length = max(last - first + 1, 0)
    if request.method == "HEAD":
        response: HttpResponseBase = HttpResponse(content_type=content_type)
    else:
        handle = storage.open(name, "rb")
        response = StreamingHttpResponse(
            FileSlice(handle, first, length), content_type=content_type
        )
    response.status_code = 206 if wanted is not None else 200
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    if wanted is not None:
        response["Content-Range"] = f"bytes {first}-{last}/{size}"
    for header, value in validators.items():
        response[header] = value
    # A generation's files never change once written; the permission check is per user.
    response["Cache-Control"] = "private, max-age=86400"
    return response


def _validators(storage: Any, name: str, size: int) -> dict[str, str]:
    try:
        modified = storage.get_modified_time(name)
    except (NotImplementedError, OSError):
        return {}
    stamp = int(modified.timestamp())
    return {"ETag": f'"{size:x}-{stamp:x}"', "Last-Modified": http_date(stamp)}


@require_http_methods(["GET", "HEAD"])
@reviewer_required
def video(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponseBase:
    generation = generation_visible(request, generation_id)
    if not generation.video:
        raise Http404("this generation has no video")
    return file_response(request, generation.video)


@require_http_methods(["GET", "HEAD"])
@reviewer_required
def poster(request: HttpRequest, generation_id: uuid.UUID) -> HttpResponseBase:
    generation = generation_visible(request, generation_id)
    if not generation.poster:
        raise Http404("this generation has no poster")
    return file_response(request, generation.poster)


# --- the staff page ---------------------------------------------------------------------------

PENDING = (Generation.Status.QUEUED, Generation.Status.RUNNING)


def _progress_row(generation: Generation) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": str(generation.id),
        "status": generation.status,
        "status_label": generation.get_status_display(),
        "progress": round(generation.progress, 3),
        "error": generation.error[:300],
        "worker": generation.claimed_by.name if generation.claimed_by_id else "",
        "heartbeat_at": generation.heartbeat_at.isoformat() if generation.heartbeat_at else None,
        "video_url": None,
    }
    if generation.status == Generation.Status.SUCCEEDED and generation.video:
        row["video_url"] = reverse("improvements:generation", args=[generation.id])
    return row


LIST_PAGE_SIZE = 50


@require_http_methods(["GET", "POST"])
@staff_required
def generation_list(request: HttpRequest) -> HttpResponse:
    """Search, filter and page through generations; queue a new one (POST)."""
    create_form = GenerationCreateForm()
    status = 200
    if request.method == "POST":
        create_form = GenerationCreateForm(request.POST)
        if create_form.is_valid():
            data = create_form.cleaned_data
            try:
                generation, created = job_request(
                    pipeline=data["pipeline"],
                    prompt=data["prompt"],
                    backend=data["backend"],
                    idempotency_key=data["idempotency_key"],
                    requested_by=request.user,
                )
            except DomainError as exc:
                create_form.add_error(None, exc.message)
            else:
                if created:
                    messages.success(request, "Generation queued; its progress updates below.")
                return redirect(f"{reverse('generation:list')}?highlight={generation.id}")
        status = 400

    backends = sorted(
        set(Generation.objects.values_list("backend", flat=True).distinct().order_by())
        | {"builtin", "remote"}
    )
    workers = list(WorkerToken.objects.order_by("name").values_list("name", flat=True).distinct())
    filters = GenerationFilterForm(request.GET or None, backends=backends, workers=workers)
    chosen: dict[str, Any] = filters.cleaned_data if filters.is_valid() else {}
    generations = selectors.generation_list(
        pipeline=chosen.get("pipeline") or None,
        status=chosen.get("status") or None,
        backend=chosen.get("backend") or None,
        prompt_contains=chosen.get("q") or None,
    )
    if chosen.get("worker"):
        generations = generations.filter(claimed_by__name=chosen["worker"])
    page = Paginator(generations, LIST_PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    query.pop("highlight", None)
    return render(
        request,
        "generation/list.html",
        {
            "generations": page.object_list,
            "page": page,
            "query": query.urlencode(),
            "filters": filters,
            "filtered": any(chosen.values()),
            "create_form": create_form,
            "has_active_revision": ConfigRevision.objects.filter(
                status=ConfigRevision.Status.ACTIVE
            ).exists(),
            "highlight": request.GET.get("highlight", ""),
            "pending_ids": [str(g.id) for g in page.object_list if g.status in PENDING],
        },
        status=status,
    )


@require_GET
@staff_required(json=True)
def generation_progress(request: HttpRequest) -> JsonResponse:
    """Status and progress of the generations asked for (?id=…&id=…); the DB is the source."""
    ids = []
    for raw in request.GET.getlist("id")[:PROGRESS_IDS_MAX]:
        try:
            ids.append(uuid.UUID(raw))
        except ValueError:
            return JsonResponse({"error": f"not a generation id: {raw[:40]!r}"}, status=400)
    rows = Generation.objects.filter(pk__in=ids).select_related("claimed_by")
    return JsonResponse({"generations": [_progress_row(g) for g in rows]})
