"""VideoGenerator: the seed's in-process entry point, for one pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from django.conf import settings

from feedbackloop.config import LoopConfig, load_config
from feedbackloop.errors import InvalidInput
from generation.models import SERVER_BACKEND, Generation
from generation.services.metrics import metrics_compute
from generation.services.rendering import generation_run
from generation.services.requests import generation_request
from pipelines.selectors import pipeline_get, revision_active
from pipelines.services.registration import pipelines_from_config
from seed.feedback_integration import FeedbackIntegration


class VideoGenerator:
    """Generates videos with a pipeline's active revision and closes the loop on them.

    ``config_path`` (default FEEDBACKLOOP_CONFIG) declares the pipelines and the feedback
    settings; its improvement criteria are the ones this object's improver and experiments use.
    ``pipeline`` names the pipeline (default: the file's default_pipeline); it may also be one
    registered over the API.
    """

    def __init__(self, config_path: str | Path | None = None, pipeline: str | None = None) -> None:
        self.config_path = Path(config_path or settings.FEEDBACKLOOP_CONFIG_PATH)
        self.config: LoopConfig = load_config(self.config_path)
        pipelines_from_config(entries=self.config.pipelines)
        self.pipeline = pipeline_get(slug=pipeline or self.config.default_pipeline)
        self.feedback_integration = FeedbackIntegration(self.config, self.pipeline)

    def reload_config(self) -> LoopConfig:
        """Re-read the config file (feedback settings, pipelines); the parameters come from the
        active revision, which the improver may have changed since this object was made."""
        self.config = load_config(self.config_path)
        pipelines_from_config(entries=self.config.pipelines)
        self.feedback_integration = FeedbackIntegration(self.config, self.pipeline)
        return self.config

    @property
    def active_revision(self) -> dict[str, Any] | None:
        active = revision_active(pipeline=self.pipeline)
        return {"number": active.number, "params": active.params} if active else None

    def generate_video(
        self, prompt: str, output_path: str | Path | None = None, *, measure: bool = True
    ) -> dict[str, Any]:
        """Render a video in-process with the pipeline's renderer and measure it.

        The revision is the active one or, while an experiment runs, an arm's (by a stable hash
        of the generation's id). Returns generation_id, output_path, pipeline, config_revision,
        params, status, generation_seconds (and the error for a failed render). The video stays
        in media storage; ``output_path`` gets a copy.
        """
        if not self.pipeline.renderer:
            raise InvalidInput(
                f"pipeline {self.pipeline.slug} has no in-process renderer: its videos are made "
                "by remote workers through the API",
                code="remote_pipeline",
            )
        generation, _ = generation_request(
            pipeline=self.pipeline, prompt=prompt, backend=SERVER_BACKEND, enqueue=False
        )
        generation = generation_run(generation_id=str(generation.id))
        result: dict[str, Any] = {
            "generation_id": str(generation.id),
            "pipeline": self.pipeline.slug,
            "status": generation.status,
            "config_revision": generation.revision.number,
            "params": generation.params,
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
            metrics_compute(generation_id=str(generation.id))
            result["metrics"] = self.feedback_integration.get_automated_metrics(str(generation.id))
        return result

    def check_for_improvements(self) -> list[dict[str, Any]]:
        return self.feedback_integration.check_for_improvements()

    def get_feedback_summary(self) -> dict[str, Any]:
        return self.feedback_integration.get_feedback_summary()

    def get_improvement_log(self, limit: int = 100) -> list[dict[str, Any]]:
        return self.feedback_integration.get_improvement_log(limit)
