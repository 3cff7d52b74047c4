"""Writes for configuration revisions and generations."""

from __future__ import annotations

import logging
import secrets
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage
from django.db import IntegrityError, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from feedbackloop.errors import Conflict, DomainError, InvalidInput, NotFound
from generation.models import (
    ConfigRevision,
    Generation,
    MetricsRun,
    MetricValue,
    RevisionTransition,
    WorkerToken,
)
from generation.params import validate_params
from generation.resources import ResourceMeter
from generation.selectors import config_for_new_generation

logger = logging.getLogger(__name__)

S = ConfigRevision.Status

# The lifecycle: proposed → approved → canary → active → retired, with exits to rejected
# (before it runs) and rolled_back (after it ran). Activation of an approved revision without a
# canary is allowed for the library path and for manual set-ups.
ALLOWED_TRANSITIONS: dict[str, set[str]] = {
    S.PROPOSED: {S.APPROVED, S.REJECTED},
    S.APPROVED: {S.CANARY, S.ACTIVE, S.REJECTED},
    S.CANARY: {S.ACTIVE, S.ROLLED_BACK},
    S.ACTIVE: {S.RETIRED, S.ROLLED_BACK},
    S.RETIRED: set(),
    S.REJECTED: set(),
    S.ROLLED_BACK: set(),
}


def _user_or_none(user: AbstractBaseUser | None) -> AbstractBaseUser | None:
    return user if user is not None and user.is_authenticated else None


def revision_create(
    *,
    params: dict[str, Any],
    parent: ConfigRevision | None = None,
    source: str = ConfigRevision.Source.MANUAL,
    rationale: str = "",
    evidence: dict[str, Any] | None = None,
    predicted_impact: dict[str, Any] | None = None,
    created_by: AbstractBaseUser | None = None,
    note: str = "",
) -> ConfigRevision:
    """Create a proposed revision with the next number. Params are validated and resolved."""
    resolved = validate_params(params)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                number = (ConfigRevision.objects.aggregate(n=Max("number"))["n"] or 0) + 1
                revision = ConfigRevision(
                    number=number,
                    parent=parent,
                    params=resolved,
                    source=source,
                    status=S.PROPOSED,
                    rationale=rationale,
                    evidence=evidence or {},
                    predicted_impact=predicted_impact or {},
                    created_by=_user_or_none(created_by),
                )
                revision.save()
                RevisionTransition.objects.create(
                    revision=revision,
                    from_status="",
                    to_status=S.PROPOSED,
                    actor=_user_or_none(created_by),
                    note=note or rationale[:500],
                )
                return revision
        except IntegrityError:
            # Two writers took the same number; the unique constraint caught it, try the next.
            continue
    raise Conflict("could not allocate a revision number; try again")


@transaction.atomic
def revision_transition(
    *,
    revision: ConfigRevision,
    to_status: str,
    actor: AbstractBaseUser | None = None,
    note: str = "",
    rollout_share: float | None = None,
) -> ConfigRevision:
    """Move a revision along its lifecycle and record the step.

    Activating a revision retires the one that was active, in the same transaction, so the
    one-active-revision constraint always holds. Entering canary needs the share of new
    generations it gets; leaving canary clears it.
    """
    if to_status == S.CANARY and not (rollout_share is not None and 0 < rollout_share < 1):
        raise InvalidInput("a canary needs a rollout share between 0 and 1", code="invalid_share")
    revision = ConfigRevision.objects.select_for_update().get(pk=revision.pk)
    from_status = revision.status
    if to_status not in ALLOWED_TRANSITIONS.get(from_status, set()):
        raise Conflict(
            f"revision r{revision.number} cannot go from {from_status} to {to_status}",
            code="invalid_transition",
        )
    if to_status == S.ACTIVE:
        current = ConfigRevision.objects.select_for_update().filter(status=S.ACTIVE).first()
        if current is not None:
            ConfigRevision.objects.filter(pk=current.pk).update(status=S.RETIRED)
            RevisionTransition.objects.create(
                revision=current,
                from_status=S.ACTIVE,
                to_status=S.RETIRED,
                actor=_user_or_none(actor),
                note=f"replaced by r{revision.number}",
            )
    ConfigRevision.objects.filter(pk=revision.pk).update(
        status=to_status, rollout_share=rollout_share if to_status == S.CANARY else None
    )
    RevisionTransition.objects.create(
        revision=revision,
        from_status=from_status,
        to_status=to_status,
        actor=_user_or_none(actor),
        note=note,
    )
    revision.refresh_from_db()
    return revision


@transaction.atomic
def revision_approve_and_activate(
    *, revision: ConfigRevision, actor: AbstractBaseUser | None = None, note: str = ""
) -> ConfigRevision:
    revision = revision_transition(revision=revision, to_status=S.APPROVED, actor=actor, note=note)
    return revision_transition(revision=revision, to_status=S.ACTIVE, actor=actor, note=note)


@transaction.atomic
def revision_ensure_active(
    *, params: dict[str, Any], actor: AbstractBaseUser | None = None
) -> ConfigRevision:
    """Return the active revision, creating revision 1 from ``params`` on an empty database."""
    active = ConfigRevision.objects.filter(status=S.ACTIVE).first()
    if active is not None:
        return active
    # Serialise first-time set-up so two processes starting together make one revision.
    if ConfigRevision.objects.select_for_update().exists():
        active = ConfigRevision.objects.filter(status=S.ACTIVE).first()
        if active is not None:
            return active
    revision = revision_create(
        params=params, created_by=actor, rationale="initial configuration", note="initial"
    )
    return revision_approve_and_activate(revision=revision, actor=actor, note="initial")


def validate_prompt(prompt: Any) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InvalidInput("prompt must be a non-empty string", code="invalid_prompt")
    prompt = prompt.strip()
    if len(prompt) > settings.MAX_PROMPT_LENGTH:
        raise InvalidInput(
            f"prompt is {len(prompt)} characters; the limit is {settings.MAX_PROMPT_LENGTH}",
            code="invalid_prompt",
        )
    return prompt


def generation_request(
    *,
    prompt: str,
    revision: ConfigRevision | None = None,
    idempotency_key: str | None = None,
    requested_by: AbstractBaseUser | None = None,
    backend: str = "builtin",
    enqueue: bool = True,
) -> tuple[Generation, bool]:
    """Queue a generation; returns (generation, created).

    With an idempotency key, a second request returns the first generation (created=False);
    the same key with a different prompt is a Conflict. The render task is enqueued only after
    the row is committed, so the worker never looks for a row that is not there yet.
    """
    prompt = validate_prompt(prompt)
    if idempotency_key is not None:
        existing = Generation.objects.filter(idempotency_key=idempotency_key).first()
        if existing is not None:
            return _same_request_or_conflict(existing, prompt, backend), False
    try:
        with transaction.atomic():
            generation_id = uuid.uuid4()
            arm = ""
            if revision is None:
                assigned = config_for_new_generation(key=str(generation_id))
                if assigned is None:
                    raise NotFound("there is no active configuration revision")
                revision, arm = assigned
            generation = Generation.objects.create(
                id=generation_id,
                prompt=prompt,
                revision=revision,
                experiment_arm=arm,
                params=dict(revision.params),
                backend=backend,
                idempotency_key=idempotency_key,
                requested_by=_user_or_none(requested_by),
            )
            if enqueue and backend == "builtin":
                generation_enqueue(generation=generation)
    except IntegrityError:
        existing = Generation.objects.filter(idempotency_key=idempotency_key).first()
        if idempotency_key is None or existing is None:
            raise
        return _same_request_or_conflict(existing, prompt, backend), False
    return generation, True


def _same_request_or_conflict(existing: Generation, prompt: str, backend: str) -> Generation:
    if existing.prompt != prompt or existing.backend != backend:
        raise Conflict(
            "this idempotency key was already used for a different request",
            code="idempotency_key_reused",
        )
    return existing


def generation_enqueue(*, generation: Generation) -> None:
    from generation.tasks import generation_run_task

    generation_id = str(generation.id)
    transaction.on_commit(lambda: generation_run_task.delay(generation_id))


def _claim(generation_id: str) -> Generation | None:
    """Mark a generation running if it is queued (or stale-running after a worker died).

    The conditional UPDATE is the lock: of two deliveries of the same message only one claims.
    """
    stale_before = timezone.now() - timedelta(seconds=settings.GENERATION_TIME_LIMIT_SECONDS + 60)
    claimed = Generation.objects.filter(
        Q(status=Generation.Status.QUEUED)
        | Q(status=Generation.Status.RUNNING, started_at__lt=stale_before),
        pk=generation_id,
    ).update(
        status=Generation.Status.RUNNING,
        started_at=timezone.now(),
        attempts=F("attempts") + 1,
        progress=0.0,
        error="",
    )
    if not claimed:
        return None
    return Generation.objects.select_related("revision").get(pk=generation_id)


def generation_run(*, generation_id: str) -> Generation:
    """Render a queued generation with the built-in renderer; idempotent.

    A generation that is already finished (or running elsewhere) is returned untouched. A render
    error marks it failed with the error text; the video is only attached once it is complete.
    """
    from generation.renderer import render_video

    if not Generation.objects.filter(pk=generation_id).exists():
        raise NotFound(f"no generation with id {generation_id}")
    generation = _claim(generation_id)
    if generation is None:
        return Generation.objects.get(pk=generation_id)

    last_progress = [0.0]

    def progress(fraction: float) -> None:
        # Coarse steps keep the worker from hammering the database with progress writes.
        if fraction - last_progress[0] >= 0.1 or fraction >= 1.0:
            last_progress[0] = fraction
            Generation.objects.filter(pk=generation.pk).update(progress=min(max(fraction, 0), 1))

    storage = default_storage
    video_name = f"generations/{generation.id}.mp4"
    poster_name = f"generations/{generation.id}.jpg"
    try:
        with ResourceMeter() as meter:
            if isinstance(storage, FileSystemStorage):
                # Render straight into place: the renderer writes a temp file and renames it.
                video_path = Path(storage.path(video_name))
                poster_path = Path(storage.path(poster_name))
                result = render_video(
                    prompt=generation.prompt,
                    params=generation.params,
                    output_path=video_path,
                    poster_path=poster_path,
                    progress=progress,
                )
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    result = render_video(
                        prompt=generation.prompt,
                        params=generation.params,
                        output_path=Path(tmp) / "video.mp4",
                        poster_path=Path(tmp) / "poster.jpg",
                        progress=progress,
                    )
                    with open(result.output_path, "rb") as fh:
                        video_name = storage.save(video_name, File(fh))
                    with open(result.poster_path, "rb") as fh:
                        poster_name = storage.save(poster_name, File(fh))
    except Exception as exc:  # noqa: BLE001 - any render error is recorded on the row
        logger.exception("generation %s failed", generation.id)
        return generation_fail(
            generation_id=str(generation.id), error=f"{type(exc).__name__}: {exc}"
        )

    usage = meter.usage
    with transaction.atomic():
        Generation.objects.filter(pk=generation.pk, status=Generation.Status.RUNNING).update(
            status=Generation.Status.SUCCEEDED,
            video=video_name,
            poster=poster_name,
            script=result.script.to_dict(),
            duration_s=result.duration_s,
            fps=result.fps,
            width=result.width,
            height=result.height,
            codec=result.codec,
            size_bytes=result.size_bytes,
            progress=1.0,
            finished_at=timezone.now(),
            generation_seconds=usage.wall_seconds,
            cpu_seconds=usage.cpu_seconds,
            peak_rss_bytes=usage.peak_rss_bytes,
        )
        generation_succeeded_hooks(generation_id=str(generation.id))
    return Generation.objects.get(pk=generation.pk)


def generation_succeeded_hooks(*, generation_id: str) -> None:
    """What follows a finished video, whoever made it: the server measures it."""
    from generation.tasks import metrics_compute_task

    transaction.on_commit(lambda: metrics_compute_task.delay(generation_id))


def generation_fail(*, generation_id: str, error: str) -> Generation:
    Generation.objects.filter(
        pk=generation_id, status__in=[Generation.Status.QUEUED, Generation.Status.RUNNING]
    ).update(
        status=Generation.Status.FAILED,
        error=error[:5000],
        finished_at=timezone.now(),
    )
    return Generation.objects.get(pk=generation_id)


def metrics_compute(*, generation_id: str) -> MetricsRun | None:
    """Measure a finished generation's video and store one row per metric; idempotent.

    A run at the current metric version that already succeeded makes this a no-op. Rows of an
    older version are replaced in the same transaction as the new rows are written, so readers
    never see a half set. A video that cannot be decoded marks the run failed with the reason
    and writes no rows; it is not retried, since decoding the same bytes again fails again.
    """
    import videometrics

    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None:
        raise NotFound(f"no generation with id {generation_id}")
    if generation.status != Generation.Status.SUCCEEDED or not generation.video:
        return None
    version = videometrics.METRICS_VERSION
    if generation.metrics_runs.filter(version=version, status=MetricsRun.Status.SUCCEEDED).exists():
        return generation.metrics_runs.filter(version=version).first()
    run = MetricsRun.objects.create(generation=generation, version=version)
    script = (generation.script or {}).get("scenes") or None
    try:
        with _local_copy(generation.video) as path:
            result = videometrics.analyze_video(
                path, script=script, ocr=settings.METRICS_OCR_ENABLED
            )
    except videometrics.VideoMetricsError as exc:
        MetricsRun.objects.filter(pk=run.pk).update(
            status=MetricsRun.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        run.refresh_from_db()
        return run
    metric_store(
        generation=generation, values=result, version=version, source=MetricValue.Source.SERVER
    )
    MetricsRun.objects.filter(pk=run.pk).update(
        status=MetricsRun.Status.SUCCEEDED,
        decode_seconds=result.get("decode_seconds"),
        compute_seconds=result.get("compute_seconds"),
        finished_at=timezone.now(),
    )
    run.refresh_from_db()
    return run


@transaction.atomic
def metric_store(
    *, generation: Generation, values: dict[str, Any], version: int, source: str
) -> list[MetricValue]:
    """Replace this source's metric rows for a generation with ``values`` (numbers only).

    Server rows and worker rows are separate: a worker's post never touches the server's rows.
    """
    rows = [
        MetricValue(
            generation=generation, name=name, value=float(value), version=version, source=source
        )
        for name, value in values.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    MetricValue.objects.filter(generation=generation, source=source).delete()
    return MetricValue.objects.bulk_create(rows)


class _local_copy:
    """A local filesystem path for a stored file (a temp copy when storage is remote)."""

    def __init__(self, field_file: Any) -> None:
        self.field_file = field_file
        self._tmp: tempfile.TemporaryDirectory | None = None

    def __enter__(self) -> str:
        storage = self.field_file.storage
        if isinstance(storage, FileSystemStorage):
            return storage.path(self.field_file.name)
        self._tmp = tempfile.TemporaryDirectory()
        path = Path(self._tmp.name) / Path(self.field_file.name).name
        with storage.open(self.field_file.name, "rb") as src, open(path, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(chunk)
        return str(path)

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


# --- Worker tokens --------------------------------------------------------------------------


def worker_token_create(
    *, name: str, created_by: AbstractBaseUser | None = None
) -> tuple[WorkerToken, str]:
    """Make a worker's API token; returns (token, key). The key is not stored: show it once."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 64:
        raise InvalidInput("a worker token needs a name of 1 to 64 characters", code="invalid_name")
    key = WorkerToken.KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            token = WorkerToken.objects.create(
                name=name,
                prefix=key[:12],
                key_hash=WorkerToken.hash_key(key),
                created_by=_user_or_none(created_by),
            )
    except IntegrityError as exc:
        raise Conflict(
            f"worker {name!r} already has a live token; revoke it first", code="token_name_taken"
        ) from exc
    return token, key


def worker_token_revoke(*, token: WorkerToken) -> WorkerToken:
    WorkerToken.objects.filter(pk=token.pk, revoked=False).update(
        revoked=True, revoked_at=timezone.now()
    )
    token.refresh_from_db()
    return token


def worker_token_touch(*, token: WorkerToken) -> None:
    """Record that the token was used; at most one write a minute, since workers poll often."""
    now = timezone.now()
    if token.last_used_at is not None and now - token.last_used_at < timedelta(minutes=1):
        return
    WorkerToken.objects.filter(pk=token.pk).update(last_used_at=now)
    token.last_used_at = now


# --- Remote jobs with leases ----------------------------------------------------------------
#
# A job is a generation with a non-builtin backend. A worker claims it and gets a lease: a
# lease_id (new on every claim) valid until lease_expires_at. Heartbeat, complete and fail
# succeed only for the worker holding the current, unexpired lease — each is one conditional
# UPDATE on (id, status=running, lease_id, worker, lease_expires_at > now), so a worker whose
# lease ran out cannot finish a job someone else now holds, and no job succeeds twice.


def _lease_duration(lease_seconds: int | None) -> timedelta:
    if lease_seconds is None:
        return timedelta(seconds=settings.API_JOB_LEASE_SECONDS)
    limit = settings.API_JOB_LEASE_MAX_SECONDS
    if (
        isinstance(lease_seconds, bool)
        or not isinstance(lease_seconds, int)
        or not (10 <= lease_seconds <= limit)
    ):
        raise InvalidInput(
            f"lease_seconds must be an integer from 10 to {limit}", code="invalid_lease_seconds"
        )
    return timedelta(seconds=lease_seconds)


def _claimable(now: Any) -> Any:
    return Generation.objects.exclude(backend="builtin").filter(
        Q(status=Generation.Status.QUEUED)
        | Q(status=Generation.Status.RUNNING, lease_expires_at__lt=now)
    )


def _held(*, generation_id: str, worker: WorkerToken, lease_id: Any, now: Any) -> Any:
    return Generation.objects.filter(
        pk=generation_id,
        status=Generation.Status.RUNNING,
        lease_id=lease_id,
        claimed_by=worker,
        lease_expires_at__gt=now,
    )


def _lease_problem(*, generation_id: str, worker: WorkerToken, lease_id: Any) -> DomainError:
    """Why a lease operation matched no row, as the error to raise."""
    generation = Generation.objects.filter(pk=generation_id).first()
    if generation is None or generation.backend == "builtin":
        return NotFound(f"no job with id {generation_id}", code="unknown_job")
    if generation.status in (Generation.Status.SUCCEEDED, Generation.Status.FAILED):
        return Conflict(f"job {generation_id} is already {generation.status}", code="job_finished")
    if str(generation.lease_id) != str(lease_id) or generation.claimed_by_id != worker.pk:
        return Conflict(
            f"job {generation_id} is no longer leased to you; it was claimed again",
            code="lease_lost",
        )
    return Conflict(f"your lease on job {generation_id} has expired", code="lease_expired")


def _jobs_fail_exhausted(now: Any) -> None:
    """Fail jobs whose lease expired after their last allowed attempt, so none loops forever."""
    exhausted = Generation.objects.exclude(backend="builtin").filter(
        status=Generation.Status.RUNNING,
        lease_expires_at__lt=now,
        attempts__gte=settings.API_JOB_MAX_ATTEMPTS,
    )
    # Read first: workers poll often, and an UPDATE takes SQLite's write lock even when it
    # matches nothing.
    if not exhausted.exists():
        return
    exhausted.update(
        status=Generation.Status.FAILED,
        error=f"the lease expired on all {settings.API_JOB_MAX_ATTEMPTS} attempts",
        finished_at=now,
        lease_expires_at=None,
    )


def _lease_take(
    *, queryset: Any, generation_id: Any, worker: WorkerToken, lease: timedelta, now: Any
) -> Generation | None:
    won = queryset.filter(pk=generation_id).update(
        status=Generation.Status.RUNNING,
        lease_id=uuid.uuid4(),
        claimed_by=worker,
        lease_expires_at=now + lease,
        heartbeat_at=now,
        started_at=now,
        attempts=F("attempts") + 1,
        progress=0.0,
        error="",
    )
    if not won:
        return None
    return Generation.objects.select_related("revision").get(pk=generation_id)


def job_claim(*, worker: WorkerToken, lease_seconds: int | None = None) -> Generation | None:
    """Lease the oldest waiting remote job to a worker; None when nothing waits.

    Waiting means queued, or running under a lease that expired. The conditional UPDATE is the
    lock: of two workers racing for the same row exactly one changes it; the other tries the next.
    """
    lease = _lease_duration(lease_seconds)
    for _round in range(5):
        now = timezone.now()
        _jobs_fail_exhausted(now)
        candidates = list(
            _claimable(now).order_by("queued_at", "id").values_list("pk", flat=True)[:8]
        )
        if not candidates:
            return None
        for pk in candidates:
            job = _lease_take(
                queryset=_claimable(now), generation_id=pk, worker=worker, lease=lease, now=now
            )
            if job is not None:
                return job
    return None


def job_request(
    *,
    prompt: str,
    backend: str = "remote",
    idempotency_key: str | None = None,
    requested_by: AbstractBaseUser | None = None,
    claim_for: WorkerToken | None = None,
    lease_seconds: int | None = None,
) -> tuple[Generation, bool]:
    """Queue a generation from the API; with ``claim_for`` a new remote job is leased at once.

    Returns (generation, created) like generation_request. A repeated request (same idempotency
    key) returns the first generation unchanged; its lease is the caller's only if it holds it.
    """
    if backend != "builtin" and not backend.strip():
        raise InvalidInput("backend must be a non-empty name", code="invalid_backend")
    if claim_for is not None and backend == "builtin":
        raise InvalidInput(
            "only remote jobs can be claimed; the builtin backend renders on the server",
            code="invalid_claim",
        )
    lease = _lease_duration(lease_seconds) if claim_for is not None else None
    with transaction.atomic():  # no other worker can claim the new job before its creator
        generation, created = generation_request(
            prompt=prompt,
            idempotency_key=idempotency_key,
            requested_by=requested_by,
            backend=backend,
        )
        if not (created and claim_for is not None):
            return generation, created
        now = timezone.now()
        claimed = _lease_take(
            queryset=_claimable(now),
            generation_id=generation.pk,
            worker=claim_for,
            lease=lease,
            now=now,
        )
    return claimed or generation, created


def job_heartbeat(
    *,
    generation_id: str,
    worker: WorkerToken,
    lease_id: Any,
    lease_seconds: int | None = None,
    progress: float | None = None,
) -> Generation:
    """Extend the caller's lease (and record progress); Conflict when it no longer holds it."""
    lease = _lease_duration(lease_seconds)
    now = timezone.now()
    updates: dict[str, Any] = {"lease_expires_at": now + lease, "heartbeat_at": now}
    if progress is not None:
        if (
            isinstance(progress, bool)
            or not isinstance(progress, (int, float))
            or not (0.0 <= progress <= 1.0)
        ):
            raise InvalidInput("progress must be a number from 0 to 1", code="invalid_progress")
        updates["progress"] = float(progress)
    if not _held(generation_id=generation_id, worker=worker, lease_id=lease_id, now=now).update(
        **updates
    ):
        raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    return Generation.objects.select_related("revision").get(pk=generation_id)


def job_fail(
    *, generation_id: str, worker: WorkerToken, lease_id: Any, error: str, requeue: bool = False
) -> Generation:
    """Give a leased job up: failed with the worker's error, or back in the queue (requeue)."""
    if not isinstance(error, str) or not error.strip():
        raise InvalidInput("error must be a non-empty text", code="invalid_error")
    now = timezone.now()
    if requeue:
        updates: dict[str, Any] = {"status": Generation.Status.QUEUED, "progress": 0.0}
    else:
        updates = {"status": Generation.Status.FAILED, "finished_at": now}
    updates.update(error=error.strip()[:5000], lease_expires_at=None)
    if not _held(generation_id=generation_id, worker=worker, lease_id=lease_id, now=now).update(
        **updates
    ):
        raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    return Generation.objects.select_related("revision").get(pk=generation_id)


POSTER_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def _probe_upload(upload: Any) -> dict[str, Any]:
    """Open the uploaded file as a video (videometrics.probe); InvalidInput with the reason."""
    import videometrics

    path = getattr(upload, "temporary_file_path", None)
    try:
        if path is not None:
            return videometrics.probe(path())
        with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
            upload.seek(0)
            for chunk in upload.chunks():
                tmp.write(chunk)
            tmp.flush()
            return videometrics.probe(tmp.name)
    except videometrics.VideoMetricsError as exc:
        raise InvalidInput(
            f"the upload is not a readable video: {exc}", code="invalid_video"
        ) from exc
    finally:
        upload.seek(0)


def _poster_extension(upload: Any) -> str:
    from PIL import Image, UnidentifiedImageError

    try:
        upload.seek(0)
        with Image.open(upload) as image:
            image_format = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidInput("the poster is not a readable image", code="invalid_poster") from exc
    finally:
        upload.seek(0)
    if image_format not in POSTER_FORMATS:
        raise InvalidInput("the poster must be a JPEG, PNG or WebP image", code="invalid_poster")
    return POSTER_FORMATS[image_format]


def job_complete(
    *,
    generation_id: str,
    worker: WorkerToken,
    lease_id: Any,
    video: Any,
    poster: Any = None,
    script: dict[str, Any] | None = None,
    generation_seconds: float | None = None,
    cpu_seconds: float | None = None,
    peak_rss_bytes: int | None = None,
) -> Generation:
    """Finish a leased job with the worker's video: check it, store it, mark it succeeded.

    The video is opened as a video before anything is stored; the files are stored before the
    row changes, and removed again if the lease turned out to be gone, so a refused upload
    leaves nothing behind. The server's own metrics are enqueued once the row is committed.
    """
    now = timezone.now()
    if not _held(generation_id=generation_id, worker=worker, lease_id=lease_id, now=now).exists():
        raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
    if script is not None and not isinstance(script, dict):
        raise InvalidInput("script must be a JSON object", code="invalid_script")
    info = _probe_upload(video)
    duration = info.get("duration_s")
    if duration is None and info.get("frames") and info.get("fps"):
        duration = info["frames"] / info["fps"]
    if not duration or duration <= 0:
        # Still images decode too (PNG, JPEG, one-frame GIF) but have no timeline.
        raise InvalidInput(
            f"the upload is not a readable video: it has no duration "
            f"(a still {info.get('codec') or 'image'}?)",
            code="invalid_video",
        )
    poster_ext = _poster_extension(poster) if poster is not None else None

    storage = default_storage
    stored: list[str] = []
    try:
        video_name = storage.save(f"generations/{generation_id}.mp4", video)
        stored.append(video_name)
        poster_name = ""
        if poster is not None:
            poster_name = storage.save(f"generations/{generation_id}.{poster_ext}", poster)
            stored.append(poster_name)
        with transaction.atomic():
            done = _held(
                generation_id=generation_id, worker=worker, lease_id=lease_id, now=timezone.now()
            ).update(
                status=Generation.Status.SUCCEEDED,
                video=video_name,
                poster=poster_name,
                script=script,
                duration_s=duration,
                fps=info.get("fps"),
                width=info.get("width"),
                height=info.get("height"),
                codec=(info.get("codec") or "")[:32],
                size_bytes=video.size,
                progress=1.0,
                finished_at=timezone.now(),
                lease_expires_at=None,
                generation_seconds=generation_seconds,
                cpu_seconds=cpu_seconds,
                peak_rss_bytes=peak_rss_bytes,
            )
            if not done:
                raise _lease_problem(generation_id=generation_id, worker=worker, lease_id=lease_id)
            generation_succeeded_hooks(generation_id=str(generation_id))
    except BaseException:
        for name in stored:
            storage.delete(name)
        raise
    return Generation.objects.select_related("revision").get(pk=generation_id)


def worker_metrics_store(
    *, generation: Generation, metrics: dict[str, Any], version: int = 1
) -> list[MetricValue]:
    """Store a worker's own metrics for a finished generation, beside (never over) the server's."""
    if generation.status != Generation.Status.SUCCEEDED:
        raise Conflict("metrics can only be posted for a succeeded generation", code="not_finished")
    return metric_store(
        generation=generation, values=metrics, version=version, source=MetricValue.Source.WORKER
    )
