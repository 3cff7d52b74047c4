"""Finished generations with real, playable videos, without running the renderer.

A synthetic H.264 clip (videometrics.synthetic) is written where the generation's video lives,
so the browser plays, seeks and measures a real file.
"""

from __future__ import annotations

from django.conf import settings

from generation.models import Generation
from tests.factories import FinishedGenerationFactory

WIDTH, HEIGHT, FPS = 320, 180, 12


def video_generation(prompt: str, *, seconds: float = 2.0, **fields) -> Generation:
    from videometrics.synthetic import encode_frames, synthetic_frames

    generation = FinishedGenerationFactory(
        prompt=prompt,
        duration_s=seconds,
        fps=FPS,
        width=WIDTH,
        height=HEIGHT,
        codec="h264",
        **fields,
    )
    name = f"generations/{generation.id}.mp4"
    path = settings.MEDIA_ROOT / name
    path.parent.mkdir(parents=True, exist_ok=True)
    encode_frames(synthetic_frames(WIDTH, HEIGHT, FPS, seconds, seed=7), path, FPS, crf=30)
    Generation.objects.filter(pk=generation.pk).update(video=name)
    generation.refresh_from_db()
    return generation
