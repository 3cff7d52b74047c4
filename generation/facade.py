"""VideoGenerator: the seed's in-process entry point."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from feedbackloop.config import LoopConfig, load_config
from feedbackloop.integration import FeedbackIntegration
from generation import services
from generation.models import Generation


class VideoGenerator:
    def __init__(self, config_path: str | Path | None = None) -> None:
        self.config_path = Path(config_path or settings.FEEDBACKLOOP_CONFIG_PATH)
        self.config: LoopConfig = load_config(self.config_path)
        self.feedback_integration = FeedbackIntegration(self.config)
        services.revision_ensure_active(params=self.config.params)

    def reload_config(self) -> LoopConfig:
        """Re-read the config file (feedback settings); the parameters come from the active
        revision, which the improver may have changed since this object was made."""
        self.config = load_config(self.config_path)
        self.feedback_integration = FeedbackIntegration(self.config)
        return self.config

    def generate_video(
        self, prompt: str, output_path: str | Path | None = None, *, measure: bool = True
    ) -> dict[str, Any]:
        """Render a video in-process with the active revision and measure it.

        Returns generation_id, output_path, config_revision, status, generation_seconds (and the
        error for a failed render). The video stays in media storage; ``output_path`` gets a copy.
        """
        generation, _ = services.generation_request(prompt=prompt, enqueue=False)
        generation = services.generation_run(generation_id=str(generation.id))
        result: dict[str, Any] = {
            "generation_id": str(generation.id),
            "status": generation.status,
            "config_revision": generation.revision.number,
            "generation_seconds": generation.generation_seconds,
            "cpu_seconds": generation.cpu_seconds,
            "peak_rss_bytes": generation.peak_rss_bytes,
            "output_path": None,
        }
        if generation.status != Generation.Status.SUCCEEDED:
            result["error"] = generation.error
            return result
        destination = (
            Path(output_path) if output_path else self.config.output_dir / f"{generation.id}.mp4"
        )
        destination.parent.mkdir(parents=True, exist_ok=True)
        with generation.video.open("rb") as src, open(destination, "wb") as dst:
            shutil.copyfileobj(src, dst)
        result["output_path"] = str(destination)
        if measure:
            services.metrics_compute(generation_id=str(generation.id))
            result["metrics"] = self.feedback_integration.get_automated_metrics(str(generation.id))
        return result

    def check_for_improvements(self) -> list[dict[str, Any]]:
        return self.feedback_integration.check_for_improvements()

    def get_feedback_summary(self) -> dict[str, Any]:
        return self.feedback_integration.get_feedback_summary()

    def get_improvement_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.feedback_integration.get_improvement_log(limit)
