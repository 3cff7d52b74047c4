"""examples/diffusers_worker.py without a model: its declaration, its encoder, its imports.

These need no diffusers extra (torch and diffusers are imported only when a model is loaded),
so they run in the default suite; the model itself is exercised by
test_diffusers_worker_e2e.py and by the older-callback test, marked `diffusers`.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from pipelines.declarations import InvalidDeclaration, declaration_check, defaults_of, params_check
from tests.live_site import ROOT

WORKER_PATH = ROOT / "examples" / "diffusers_worker.py"


def load_worker():
    spec = importlib.util.spec_from_file_location("diffusers_worker", WORKER_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = load_worker()


def test_the_worker_module_imports_no_django_celery_opencv_or_onnxruntime():
    check = (
        "import runpy, sys; "
        f"runpy.run_path({str(WORKER_PATH)!r}, run_name='diffusers_worker'); "
        "heavy = {'django', 'celery', 'cv2', 'onnxruntime', 'rest_framework'}; "
        "loaded = sorted(heavy & {m.partition('.')[0] for m in sys.modules}); "
        "assert not loaded, loaded; "
        "assert 'feedbackloop_client' in sys.modules"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd="/"
    )
    assert done.returncode == 0, done.stderr[-3000:]


def test_the_declared_space_is_a_valid_pipeline_declaration():
    space = declaration_check(worker.declaration(["DDIMScheduler", "UniPCMultistepScheduler"]))
    properties = space["properties"]
    assert properties["scheduler"]["enum"] == [
        "default",
        "DDIMScheduler",
        "UniPCMultistepScheduler",
    ]
    tunable = {name for name, spec in properties.items() if spec.get("x-tunable", True)}
    assert tunable == {"num_inference_steps", "guidance_scale", "scheduler"}
    assert properties["num_inference_steps"]["x-scale"] == "log"
    assert defaults_of(space)["seed"] == -1


def test_defaults_given_on_the_command_line_replace_the_declared_ones():
    args = worker.arguments(
        ["--url", "u", "--token", "t", "--model", "m", "--default", "num_frames=9"]
        + ["--default", "negative_prompt=blurry, low quality", "--once"]
    )
    assert args.max_jobs == 1
    space = declaration_check(worker.declaration(["DDIMScheduler"], dict(args.default)))
    params = params_check(space, {})
    assert params["num_frames"] == 9 and params["negative_prompt"] == "blurry, low quality"


def test_a_default_outside_its_bounds_is_refused_by_the_declaration_check():
    with pytest.raises(InvalidDeclaration) as error:
        declaration_check(worker.declaration([], {"num_inference_steps": 0}))
    assert "num_inference_steps" in str(error.value)


def test_an_unknown_default_is_refused_before_anything_is_sent():
    with pytest.raises(ValueError, match="no such parameter"):
        worker.declaration([], {"steps": 4})


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("THUDM/CogVideoX-2b", "diffusers-cogvideox-2b"),
        ("Lightricks/LTX-Video", "diffusers-ltx-video"),
        ("/tmp/models/My Model_v2/", "diffusers-my-model_v2"),
    ],
)
def test_the_default_slug_is_made_from_the_model_name(model, slug):
    assert worker.default_slug(model) == slug


def test_frames_of_every_shape_pipelines_return_become_uint8_rgb():
    floats = np.full((1, 3, 6, 5, 3), 0.5, dtype=np.float32)
    assert worker.video_array(floats).dtype == np.uint8
    assert worker.video_array(floats)[0, 0, 0].tolist() == [128, 128, 128]
    grey = np.zeros((1, 2, 4, 4, 1), dtype=np.float32)
    assert worker.video_array(grey).shape == (2, 4, 4, 3)
    with pytest.raises(ValueError, match="frames × height × width"):
        worker.video_array(np.zeros((1, 4, 4, 3)))


def test_the_encoder_writes_browser_ready_h264_even_for_odd_sizes(tmp_path):
    rng = np.random.default_rng(0)
    video = rng.integers(0, 256, size=(9, 33, 47, 3), dtype=np.uint8)
    path = tmp_path / "out.mp4"
    worker.encode_mp4(video, 8, path)
    data = path.read_bytes()
    assert data.index(b"moov") < data.index(b"mdat"), "faststart: the index comes first"
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.codec_context.width, stream.codec_context.height) == (48, 34)
        assert stream.average_rate == 8
        assert sum(1 for _ in container.decode(stream)) == 9


def test_the_poster_is_the_middle_frame_as_jpeg(tmp_path):
    video = np.zeros((5, 16, 16, 3), dtype=np.uint8)
    video[2] = 200
    path = tmp_path / "poster.jpg"
    worker.write_poster(video, path)
    data = Path(path).read_bytes()
    assert data[:3] == b"\xff\xd8\xff"
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    assert abs(int(frame.mean()) - 200) <= 2
