"""Workers' uploads straight to object storage: presigned PUT URLs, then complete by key.

With media in an S3-compatible bucket (MEDIA_STORAGE=s3), a worker holding a job's lease asks
for upload URLs: a presigned PUT for the video and one for the poster, at staging keys of its
lease (``uploads/<generation>/<lease>/video`` and ``…/poster``). It PUTs the files to the bucket
— the web host never carries the bytes in — and completes the job with those keys. The server
then checks them as it checks an upload (size, decoded as a video within the upload limits, the
poster an image), copies them inside the bucket to the generation's names and marks it
succeeded on the worker's lease. The staging objects are deleted either way; a stale lease's
staging objects are never read (the keys name the lease).
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import transaction
from django.utils import timezone

from feedbackloop.errors import Conflict, InvalidInput
from generation.media import poster_name, video_name
from generation.models import Generation, WorkerToken
from generation.object_storage import copy_within, presign_expiry, presigned_put, presigning
from generation.services.leases import _held, _lease_problem
from generation.services.outcomes import generation_succeed
from generation.services.uploads import poster_extension, probe_upload
from pipelines.renderers import RenderedVideo

POSTER_MAX_BYTES = 20 * 1024 * 1024
STAGING_FOLDER = "uploads"


def staging_name(*, generation_id: Any, lease_id: Any, what: str) -> str:
    return f"{STAGING_FOLDER}/{generation_id}/{lease_id}/{what}"


def _require_object_storage() -> Any:
    storage = default_storage
    if not presigning(storage):
        raise Conflict(
            "direct uploads need object storage (MEDIA_STORAGE=s3); on this site upload the "
            "files to the job's complete endpoint (multipart)",
            code="direct_upload_unavailable",
        )
    return storage


def _require_lease(*, generation_id: Any, worker: WorkerToken, lease_id: Any) -> None:
    if not _held(
        generation_id=generation_id, worker=worker, lease_id=lease_id, now=timezone.now()
    ).exists():
        raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)


def job_upload_urls(*, generation_id: Any, worker: WorkerToken, lease_id: Any) -> dict[str, Any]:
    """Presigned PUT URLs for the video and the poster of a job the worker holds."""
    storage = _require_object_storage()
    _require_lease(generation_id=generation_id, worker=worker, lease_id=lease_id)
    targets = {}
    for what in ("video", "poster"):
        name = staging_name(generation_id=generation_id, lease_id=lease_id, what=what)
        targets[what] = {"key": name, "url": presigned_put(name, storage), "method": "PUT"}
    return {
        **targets,
        "expires_in": presign_expiry(storage),
        "max_video_bytes": settings.API_MAX_UPLOAD_BYTES,
        "max_poster_bytes": POSTER_MAX_BYTES,
    }


class _OnDisk:
    """A downloaded file in the shape probe_upload reads."""

    def __init__(self, path: str) -> None:
        self.path = path

    def temporary_file_path(self) -> str:
        return self.path

    def seek(self, position: int) -> None:
        pass


def _expect(given: Any, expected: str, field: str) -> None:
    if given != expected:
        raise InvalidInput(
            f"{field} must be the key that upload-url gave for this lease ({expected})",
            code="invalid_key",
        )


def _uploaded_size(storage: Any, name: str, field: str, limit: int) -> int:
    if not storage.exists(name):
        raise InvalidInput(f"nothing was uploaded at {field} {name}", code="missing_upload")
    size = storage.size(name)
    if size == 0:
        raise InvalidInput(f"the object at {field} is empty", code="invalid_video")
    if size > limit:
        raise InvalidInput(
            f"the object at {field} is {size} bytes; the limit is {limit} bytes",
            code="upload_too_large",
        )
    return size


def job_complete_from_keys(
    *,
    generation_id: Any,
    worker: WorkerToken,
    lease_id: Any,
    video_key: str,
    poster_key: str | None = None,
    script: dict[str, Any] | None = None,
    generation_seconds: float | None = None,
    cpu_seconds: float | None = None,
    peak_rss_bytes: int | None = None,
) -> Generation:
    """Finish a leased job whose files the worker PUT to the bucket (see the module's doc)."""
    storage = _require_object_storage()
    _require_lease(generation_id=generation_id, worker=worker, lease_id=lease_id)
    if script is not None and not isinstance(script, dict):
        raise InvalidInput("script must be a JSON object", code="invalid_script")
    staged = {
        "video": staging_name(generation_id=generation_id, lease_id=lease_id, what="video"),
        "poster": staging_name(generation_id=generation_id, lease_id=lease_id, what="poster"),
    }
    _expect(video_key, staged["video"], "video_key")
    if poster_key is not None:
        _expect(poster_key, staged["poster"], "poster_key")
    copied: list[str] = []
    try:
        size = _uploaded_size(storage, video_key, "video_key", settings.API_MAX_UPLOAD_BYTES)
        with tempfile.NamedTemporaryFile(dir=settings.FILE_UPLOAD_TEMP_DIR, suffix=".mp4") as tmp:
            with storage.open(video_key, "rb") as source:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    tmp.write(chunk)
            tmp.flush()
            info = probe_upload(_OnDisk(tmp.name))
        final_poster = ""
        if poster_key is not None:
            _uploaded_size(storage, poster_key, "poster_key", POSTER_MAX_BYTES)
            with storage.open(poster_key, "rb") as source:
                extension = poster_extension(ContentFile(source.read()))
            final_poster = copy_within(poster_key, poster_name(generation_id, extension), storage)
            copied.append(final_poster)
        final_video = copy_within(video_key, video_name(generation_id), storage)
        copied.append(final_video)
        with transaction.atomic():
            done = generation_succeed(
                generation_id=generation_id,
                held=_held(
                    generation_id=generation_id,
                    worker=worker,
                    lease_id=lease_id,
                    now=timezone.now(),
                ),
                video_name=final_video,
                poster_name=final_poster,
                video=RenderedVideo(
                    duration_s=info["duration_s"],
                    fps=info.get("fps"),
                    width=info.get("width"),
                    height=info.get("height"),
                    codec=(info.get("codec") or "")[:32],
                    size_bytes=size,
                    script=script,
                ),
                generation_seconds=generation_seconds,
                cpu_seconds=cpu_seconds,
                peak_rss_bytes=peak_rss_bytes,
            )
            if not done:
                raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    except BaseException:
        for name in copied:
            storage.delete(name)
        raise
    finally:
        for name in staged.values():
            storage.delete(name)
    return Generation.objects.select_related("revision__pipeline").get(pk=generation_id)
