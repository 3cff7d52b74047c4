"""The worker's Model around a real (tiny, random) diffusers pipeline, in process.

The end-to-end test serves a WanPipeline (``callback_on_step_end``); this one loads a
TextToVideoSDPipeline, which reports steps through the older ``callback`` API and has a
family of compatible schedulers to swap between. Needs the diffusers extra.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from tests.diffusers.tiny_pipelines import tiny_text_to_video_sd
from tests.live_site import ROOT

pytestmark = [pytest.mark.diffusers]

PARAMS = {
    "num_inference_steps": 3,
    "guidance_scale": 6.0,
    "num_frames": 4,
    "fps": 8,
    "height": 32,
    "width": 32,
    "negative_prompt": "blurry",
    "scheduler": "DPMSolverMultistepScheduler",
    "seed": 3,
}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    spec = importlib.util.spec_from_file_location(
        "diffusers_worker", ROOT / "examples" / "diffusers_worker.py"
    )
    worker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(worker)
    folder = tmp_path_factory.mktemp("t2v")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")  # a local folder: nothing to fetch, and nothing may
        tiny_text_to_video_sd(folder).save_pretrained(folder / "model")
        return worker.Model(str(folder / "model"), "cpu", "float32")


def test_an_older_pipeline_reports_every_denoising_step_through_its_callback(model):
    steps = []
    video, seed = model.generate("a red ball", PARAMS, lambda *step: steps.append(step))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert seed == 3
    assert video.shape == (4, 32, 32, 3) and video.dtype == np.uint8


def test_the_scheduler_is_swapped_by_name_and_default_restores_the_checkpoints(model):
    assert "DPMSolverMultistepScheduler" in model.scheduler_names()
    model.use_scheduler("DPMSolverMultistepScheduler")
    assert type(model.pipe.scheduler).__name__ == "DPMSolverMultistepScheduler"
    model.use_scheduler("default")
    assert type(model.pipe.scheduler).__name__ == "DDIMScheduler"
    with pytest.raises(ValueError, match="not compatible"):
        model.use_scheduler("FlowMatchEulerDiscreteScheduler")


def test_the_same_seed_gives_the_same_video(model):
    params = {**PARAMS, "scheduler": "default", "num_inference_steps": 2}
    first, _ = model.generate("a red ball", params, lambda *_: None)
    again, _ = model.generate("a red ball", params, lambda *_: None)
    # An ignored seed would leave the noise to torch's global generator, which moves on.
    assert np.array_equal(first, again)
