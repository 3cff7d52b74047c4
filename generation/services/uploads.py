"""Checking an uploaded video and poster before anything is stored.

The video is opened as a video (videometrics.probe) and must have a timeline and stay within
the configured limits (size is checked by the parser; width, height, frame rate and duration
here), each named in the 400 when exceeded.
"""

from __future__ import annotations

import tempfile
from typing import Any

from django.conf import settings

from feedbackloop.errors import InvalidInput

POSTER_FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def probe_upload(upload: Any) -> dict[str, Any]:
    """The upload's video facts (duration_s always set); InvalidInput with the reason."""
    import videometrics

    path = getattr(upload, "temporary_file_path", None)
    try:
        if path is not None:
            info = videometrics.probe(path())
        else:
            with tempfile.NamedTemporaryFile(suffix=".mp4") as tmp:
                upload.seek(0)
                for chunk in upload.chunks():
                    tmp.write(chunk)
                tmp.flush()
                info = videometrics.probe(tmp.name)
    except videometrics.VideoMetricsError as exc:
        raise InvalidInput(
            f"the upload is not a readable video: {exc}", code="invalid_video"
        ) from exc
    finally:
        upload.seek(0)
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
    info["duration_s"] = duration
    _within_limits(info)
    return info


def _within_limits(info: dict[str, Any]) -> None:
    limits = (
        ("width", info.get("width"), settings.UPLOAD_MAX_WIDTH, "pixels", "UPLOAD_MAX_WIDTH"),
        ("height", info.get("height"), settings.UPLOAD_MAX_HEIGHT, "pixels", "UPLOAD_MAX_HEIGHT"),
        ("fps", info.get("fps"), settings.UPLOAD_MAX_FPS, "frames/s", "UPLOAD_MAX_FPS"),
        (
            "duration",
            info.get("duration_s"),
            settings.UPLOAD_MAX_DURATION_SECONDS,
            "seconds",
            "UPLOAD_MAX_DURATION_SECONDS",
        ),
    )
    for what, value, limit, unit, setting in limits:
        if value is not None and value > limit:
            raise InvalidInput(
                f"the video's {what} is {value:g} {unit}; the limit is {limit:g} ({setting})",
                code="video_too_large",
            )


def poster_extension(upload: Any) -> str:
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
