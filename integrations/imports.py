"""Importing videos made elsewhere (a team's evaluation set) as generations ready for review.

A manifest (CSV with a header row, or JSONL) lists one video per row:

    source   a path under one of IMPORT_ALLOWED_ROOTS, or an https URL (also as "path"/"url")
    prompt   the prompt it was made for
    pipeline the pipeline's slug
    params   optional: its parameters (a JSON object; in CSV as JSON text), checked against the
             pipeline's declaration

Each row is imported on its own, all or nothing: the file is read (or downloaded, size-limited,
with timeouts) and hashed, decoded to check that it is a video within the upload limits, stored
with a poster made from its middle frame, and recorded as a succeeded generation whose metrics
are then computed on the metrics queue. The same bytes imported again find the generation they
made (Generation.content_sha256). A bad row is reported with its line number and leaves nothing
behind; the other rows still import.

The generation's revision: with params, the pipeline's revision holding exactly those (resolved)
params, or else a new manual revision (proposed, never active) holding them; without params, the
pipeline's active revision.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from django.conf import settings
from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from feedbackloop.actors import person_or_none
from feedbackloop.errors import DomainError, InvalidInput, NotFound
from generation.media import poster_name, video_name
from generation.models import Generation
from generation.services.outcomes import generation_succeeded_hooks
from generation.services.requests import validate_prompt
from generation.services.uploads import probe_upload
from pipelines.declarations import params_check
from pipelines.models import ConfigRevision, Pipeline
from pipelines.selectors import revision_active, schema_current
from pipelines.services.revisions import revision_create

logger = logging.getLogger(__name__)

IMPORT_BACKEND = "import"
MANIFEST_FIELDS = ("source", "prompt", "pipeline", "params")
SOURCE_ALIASES = ("source", "path", "url")
READ_BYTES = 1 << 20


@dataclass(frozen=True)
class ManifestRow:
    line: int
    fields: dict[str, Any]


@dataclass(frozen=True)
class ImportResult:
    """What became of one manifest row: imported, duplicate (already imported) or error."""

    line: int
    status: str
    message: str = ""
    generation_id: str | None = None
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class ImportRefused(InvalidInput):
    code = "import_refused"


# --- reading the manifest ---------------------------------------------------------------------


def manifest_rows(text: str, *, fmt: str | None = None) -> Iterator[ManifestRow | ImportResult]:
    """The manifest's rows with their line numbers (an unreadable row is an ImportResult error).

    ``fmt`` is "csv" or "jsonl"; by default a manifest whose first non-blank character is "{"
    is JSONL, else CSV.
    """
    if fmt is None:
        fmt = "jsonl" if text.lstrip().startswith("{") else "csv"
    if fmt not in ("csv", "jsonl"):
        raise InvalidInput(f"unknown manifest format {fmt!r}; valid: csv, jsonl")
    if fmt == "jsonl":
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as exc:
                yield ImportResult(number, "error", f"not a JSON object: {exc}")
                continue
            if not isinstance(value, dict):
                yield ImportResult(number, "error", "not a JSON object")
                continue
            yield ManifestRow(number, value)
        return
    reader = csv.DictReader(io.StringIO(text))
    header = reader.fieldnames or []
    if not any(name in header for name in SOURCE_ALIASES) or "prompt" not in header:
        raise InvalidInput(
            "the CSV manifest needs a header row with source (or path/url), prompt, pipeline "
            f"and optionally params; it has {', '.join(header) or 'none'}",
            code="invalid_manifest",
        )
    while True:
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield ImportResult(start, "error", f"unreadable CSV: {exc}")
            return
        if not any((v or "").strip() for v in record.values() if isinstance(v, str)):
            continue
        fields: dict[str, Any] = {k: v for k, v in record.items() if k is not None}
        raw = (fields.get("params") or "").strip()
        if raw:
            try:
                fields["params"] = json.loads(raw)
            except ValueError:
                yield ImportResult(start, "error", "params must be a JSON object")
                continue
        else:
            fields.pop("params", None)
        yield ManifestRow(start, fields)


# --- one row ----------------------------------------------------------------------------------


def _source_of(fields: dict[str, Any]) -> str:
    given = [fields[k] for k in SOURCE_ALIASES if isinstance(fields.get(k), str) and fields[k]]
    if len(given) != 1:
        raise ImportRefused("give exactly one of source, path or url", code="invalid_source")
    return given[0].strip()


def allowed_roots() -> list[Path]:
    return [Path(os.path.realpath(root)) for root in settings.IMPORT_ALLOWED_ROOTS]


def _local_file(source: str, base_dir: Path | None) -> Path:
    path = Path(source)
    if not path.is_absolute():
        if base_dir is None:
            raise ImportRefused(f"{source}: a path must be absolute", code="outside_root")
        path = base_dir / path
    real = Path(os.path.realpath(path))
    roots = allowed_roots()
    if not roots:
        raise ImportRefused(
            "importing from paths is off: set IMPORT_ALLOWED_ROOTS", code="outside_root"
        )
    if not any(real == root or root in real.parents for root in roots):
        raise ImportRefused(
            f"{source} is outside the allowed roots ({', '.join(map(str, roots))})",
            code="outside_root",
        )
    if not real.is_file():
        raise ImportRefused(f"{source}: no such file", code="missing_file")
    size = real.stat().st_size
    if size > settings.IMPORT_MAX_BYTES:
        raise ImportRefused(
            f"{source} is {size} bytes; the limit is {settings.IMPORT_MAX_BYTES} "
            "(IMPORT_MAX_BYTES)",
            code="video_too_large",
        )
    return real


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(READ_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


@contextmanager
def _downloaded(url: str) -> Iterator[tuple[Path, str]]:
    """Download an https URL to a temporary file (removed on exit): (path, sha256).

    Redirects are followed only to https URLs; the body may not pass IMPORT_MAX_BYTES (checked
    on Content-Length and while reading); each read waits IMPORT_DOWNLOAD_TIMEOUT_SECONDS at
    most and the whole download IMPORT_DOWNLOAD_MAX_SECONDS.
    """
    import requests

    limit = settings.IMPORT_MAX_BYTES
    timeout = settings.IMPORT_DOWNLOAD_TIMEOUT_SECONDS
    deadline = time.monotonic() + settings.IMPORT_DOWNLOAD_MAX_SECONDS
    with tempfile.NamedTemporaryFile(
        dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="import-", suffix=".part"
    ) as tmp:
        digest = hashlib.sha256()
        current = url
        with requests.Session() as session:
            for _hop in range(4):
                if urlsplit(current).scheme != "https":
                    raise ImportRefused(f"{url}: only https URLs are imported", code="invalid_url")
                try:
                    response = session.get(
                        current, stream=True, timeout=(timeout, timeout), allow_redirects=False
                    )
                except requests.RequestException as exc:
                    raise ImportRefused(
                        f"{url}: download failed: {type(exc).__name__}", code="download_failed"
                    ) from exc
                with response:
                    if response.is_redirect:
                        current = urljoin(current, response.headers.get("Location", ""))
                        continue
                    if response.status_code != 200:
                        raise ImportRefused(
                            f"{url}: the server answered HTTP {response.status_code}",
                            code="download_failed",
                        )
                    declared = response.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > limit:
                        raise ImportRefused(
                            f"{url} is {declared} bytes; the limit is {limit} (IMPORT_MAX_BYTES)",
                            code="video_too_large",
                        )
                    size = 0
                    try:
                        for chunk in response.iter_content(chunk_size=READ_BYTES):
                            size += len(chunk)
                            if size > limit:
                                raise ImportRefused(
                                    f"{url} is larger than the limit of {limit} bytes "
                                    "(IMPORT_MAX_BYTES)",
                                    code="video_too_large",
                                )
                            if time.monotonic() > deadline:
                                raise ImportRefused(
                                    f"{url}: the download took longer than "
                                    f"{settings.IMPORT_DOWNLOAD_MAX_SECONDS}s",
                                    code="download_failed",
                                )
                            digest.update(chunk)
                            tmp.write(chunk)
                    except requests.RequestException as exc:
                        raise ImportRefused(
                            f"{url}: download failed: {type(exc).__name__}",
                            code="download_failed",
                        ) from exc
                    tmp.flush()
                    yield Path(tmp.name), digest.hexdigest()
                    return
        raise ImportRefused(f"{url}: too many redirects", code="download_failed")


class _OnDisk:
    """A file on disk in the shape probe_upload reads."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def temporary_file_path(self) -> str:
        return str(self.path)

    def seek(self, position: int) -> None:
        pass


def poster_jpeg(path: Path) -> bytes:
    """A JPEG still of the video's middle frame (the first frame if seeking fails)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frame = None
        duration = container.duration  # microseconds (av.time_base)
        if duration and duration > 0:
            try:
                container.seek(duration // 2, any_frame=False, backward=True)
                frame = next(container.decode(stream), None)
            except (av.FFmpegError, StopIteration):
                frame = None
        if frame is None:
            container.seek(0)
            frame = next(container.decode(stream), None)
        if frame is None:
            raise ImportRefused("the video has no decodable frame", code="invalid_video")
        image = frame.to_image()
    out = io.BytesIO()
    image.convert("RGB").save(out, format="JPEG", quality=85)
    return out.getvalue()


def _pipeline(slug: Any) -> Pipeline:
    pipeline = Pipeline.objects.filter(slug=slug).first() if isinstance(slug, str) else None
    if pipeline is None:
        known = ", ".join(Pipeline.objects.values_list("slug", flat=True)) or "none"
        raise NotFound(f"unknown pipeline {slug!r}; known: {known}", code="unknown_pipeline")
    return pipeline


def revision_for_import(
    *, pipeline: Pipeline, params: dict[str, Any] | None, actor: Any = None
) -> ConfigRevision:
    """The revision an imported video is recorded under (see the module's docstring)."""
    active = revision_active(pipeline=pipeline)
    if params is None:
        if active is None:
            raise NotFound(
                f"pipeline {pipeline.slug} has no active revision; give the video's params",
                code="no_active_revision",
            )
        return active
    resolved = params_check(schema_current(pipeline=pipeline).parameters, params)
    if active is not None and active.params == resolved:
        return active
    for revision in pipeline.revisions.order_by("-number"):
        if revision.params == resolved:
            return revision
    return revision_create(
        pipeline=pipeline,
        params=resolved,
        parent=active,
        source=ConfigRevision.Source.MANUAL,
        rationale="holds the parameters of imported videos (import_videos); not a candidate",
        created_by=actor,
        note="made by an import",
    )


def video_import(
    *,
    line: int,
    fields: dict[str, Any],
    requested_by: Any = None,
    base_dir: Path | None = None,
) -> ImportResult:
    """Import one manifest row, all or nothing; every refusal is an ImportResult error."""
    source = ""
    try:
        unknown = sorted(set(fields) - {*SOURCE_ALIASES, *MANIFEST_FIELDS})
        if unknown:
            raise InvalidInput(
                f"unknown field {', '.join(map(str, unknown))}; valid fields: source (or path, "
                "url), prompt, pipeline, params",
                code="unknown_field",
            )
        source = _source_of(fields)
        prompt = validate_prompt(fields.get("prompt"))
        pipeline = _pipeline(fields.get("pipeline"))
        params = fields.get("params")
        if params is not None and not isinstance(params, dict):
            raise InvalidInput("params must be a JSON object", code="invalid_params")
        if params is not None:
            params_check(schema_current(pipeline=pipeline).parameters, params)  # early, cheap
        with ExitStack() as stack:
            if urlsplit(source).scheme in ("http", "https", "ftp"):
                path, digest = stack.enter_context(_downloaded(source))
            else:
                path = _local_file(source, base_dir)
                digest = _sha256_of(path)
            existing = Generation.objects.filter(content_sha256=digest).first()
            if existing is not None:
                return ImportResult(
                    line, "duplicate", "already imported", str(existing.pk), source=source
                )
            info = probe_upload(_OnDisk(path))
            poster = poster_jpeg(path)
            generation_id = _store_and_record(
                path=path,
                poster=poster,
                digest=digest,
                info=info,
                prompt=prompt,
                pipeline=pipeline,
                params=params,
                requested_by=requested_by,
            )
    except DomainError as exc:
        return ImportResult(line, "error", exc.message, source=source)
    except _Duplicate as dup:
        return ImportResult(line, "duplicate", "already imported", dup.generation_id, source)
    return ImportResult(line, "imported", "", str(generation_id), source=source)


class _Duplicate(Exception):
    def __init__(self, generation_id: str | None) -> None:
        self.generation_id = generation_id


def _store_and_record(
    *,
    path: Path,
    poster: bytes,
    digest: str,
    info: dict[str, Any],
    prompt: str,
    pipeline: Pipeline,
    params: dict[str, Any] | None,
    requested_by: Any,
) -> uuid.UUID:
    """Store the files, then write the row; on any failure the stored files are removed."""
    storage = default_storage
    generation_id = uuid.uuid4()
    stored: list[str] = []
    try:
        with open(path, "rb") as handle:
            stored.append(storage.save(video_name(generation_id), File(handle)))
        stored.append(storage.save(poster_name(generation_id), ContentFile(poster)))
        with transaction.atomic():
            revision = revision_for_import(pipeline=pipeline, params=params, actor=requested_by)
            now = timezone.now()
            Generation.objects.create(
                id=generation_id,
                prompt=prompt,
                status=Generation.Status.SUCCEEDED,
                revision=revision,
                params=dict(revision.params),
                backend=IMPORT_BACKEND,
                requested_by=person_or_none(requested_by),
                content_sha256=digest,
                video=stored[0],
                poster=stored[1],
                duration_s=info["duration_s"],
                fps=info.get("fps"),
                width=info.get("width"),
                height=info.get("height"),
                codec=(info.get("codec") or "")[:32],
                size_bytes=path.stat().st_size,
                progress=1.0,
                started_at=now,
                finished_at=now,
            )
            generation_succeeded_hooks(generation_id=str(generation_id))
    except BaseException as exc:
        for name in stored:
            storage.delete(name)
        if isinstance(exc, IntegrityError):
            existing = Generation.objects.filter(content_sha256=digest).first()
            if existing is not None:  # the same bytes were imported meanwhile
                raise _Duplicate(str(existing.pk)) from exc
        raise
    return generation_id


def manifest_import(
    *,
    rows: Iterable[ManifestRow | ImportResult],
    requested_by: Any = None,
    base_dir: Path | None = None,
) -> Iterator[ImportResult]:
    """Import every row on its own; yields each row's result as it is done."""
    for row in rows:
        if isinstance(row, ImportResult):
            yield row
            continue
        try:
            yield video_import(
                line=row.line, fields=row.fields, requested_by=requested_by, base_dir=base_dir
            )
        except Exception as exc:  # noqa: BLE001 - one row's bug must not stop the others
            logger.exception("import of manifest line %s failed", row.line)
            yield ImportResult(row.line, "error", f"{type(exc).__name__}: {exc}")
