"""Writes for configuration revisions and generations."""

from __future__ import annotations

import logging
import tempfile
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

from feedbackloop.errors import Conflict, InvalidInput, NotFound
from generation.models import (
    ConfigRevision,
    Generation,
    MetricsRun,
    MetricValue,
    RevisionTransition,
)
from generation.params import validate_params
from generation.resources import ResourceMeter

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
) -> ConfigRevision:
    """Move a revision along its lifecycle and record the step.

    Activating a revision retires the one that was active, in the same transaction, so the
    one-active-revision constraint always holds.
    """
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
    ConfigRevision.objects.filter(pk=revision.pk).update(status=to_status)
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
            return _same_request_or_conflict(existing, prompt), False
    try:
        with transaction.atomic():
            if revision is None:
                revision = ConfigRevision.objects.filter(status=S.ACTIVE).first()
                if revision is None:
                    raise NotFound("there is no active configuration revision")
            generation = Generation.objects.create(
                prompt=prompt,
                revision=revision,
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
        return _same_request_or_conflict(existing, prompt), False
    return generation, True


def _same_request_or_conflict(existing: Generation, prompt: str) -> Generation:
    if existing.prompt != prompt:
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
        return generation_fail(generation_id=str(generation.id), error=f"{type(exc).__name__}: {exc}")

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
    metric_store(generation=generation, values=result, version=version, source=MetricValue.Source.SERVER)
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
        MetricValue(generation=generation, name=name, value=float(value), version=version, source=source)
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
