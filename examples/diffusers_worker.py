"""A remote worker serving a Hugging Face diffusers text-to-video pipeline to a feedbackloop site.

Any ``DiffusionPipeline`` whose call takes a prompt and returns ``.frames`` works: CogVideoX,
LTX-Video, Wan, TextToVideoSD, … The worker loads the model, declares the pipeline and its
parameter space on the site (``PUT /api/v1/pipelines/{slug}/``: steps, guidance, frames, fps,
size, negative prompt, scheduler, seed), then claims that pipeline's jobs and for each one calls
the model with the job's revision parameters, reports every denoising step through heartbeats,
encodes the frames with PyAV (H.264, yuv420p, faststart) and uploads the video with a poster.
The site measures the upload; reviewers rate it; the improver proposes new revisions of the
declared parameters, which the next jobs carry.

A GPU host needs only this file, the client package and the model's libraries — not the site
(no Django, Celery, OpenCV or onnxruntime)::

    pip install ./clients/python torch diffusers transformers accelerate av
    # on the site: python manage.py create_worker_token gpu-1 --pipelines 'diffusers-*'
    export FEEDBACKLOOP_TOKEN=flw_…
    python examples/diffusers_worker.py --url https://feedbackloop.example.com \\
        --model THUDM/CogVideoX-2b --device cuda --dtype float16

Options: --slug (default ``diffusers-<model name>``), --default KEY=VALUE (a declared default,
e.g. ``--default num_frames=49``; the first registration makes revision 1 from the defaults),
--once / --max-jobs N, --idle-exit SECONDS, --poll-seconds, --lease-seconds,
--progress-seconds (least time between progress heartbeats), --cpu-offload.
Ctrl-C puts the current job back in the queue.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import random
import re
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from feedbackloop_client import ApiError, FeedbackLoopClient, Job, LeaseKeeper, LeaseLost

log = logging.getLogger("diffusers_worker")

# Where the denoising loop ends on the progress bar: decoding, encoding and the upload follow.
DENOISE_SHARE = 0.9

# The declared parameter space (docs/api.md, "Declaring a pipeline"). ``scheduler``'s choices
# are filled in from the loaded model: only schedulers compatible with its own can be swapped in.
PARAMETERS: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Hugging Face diffusers text-to-video",
    "type": "object",
    "properties": {
        "num_inference_steps": {
            "type": "integer",
            "minimum": 1,
            "maximum": 200,
            "default": 50,
            "description": "denoising steps: more refine detail, and generation time grows "
            "in proportion",
            "x-scale": "log",
            "x-step": 1,
            "x-affects": {
                "visual_quality": "+",
                "visual_artifact": "-",
                "blur": "-",
                "generation_seconds": "+",
            },
            "x-cost": True,
        },
        "guidance_scale": {
            "type": "number",
            "minimum": 1.0,
            "maximum": 20.0,
            "default": 6.0,
            "description": "classifier-free guidance: higher follows the prompt more closely, "
            "too high oversaturates and adds artifacts",
            "x-step": 0.5,
            "x-affects": {
                "content_relevance": "+",
                "content_mismatch": "-",
                "visual_artifact": "+",
            },
        },
        "num_frames": {
            "type": "integer",
            "minimum": 1,
            "maximum": 257,
            "default": 49,
            "description": "frames generated (the video lasts num_frames / fps seconds); each "
            "model has its own rule, e.g. 4k+1 for CogVideoX and Wan, 8k+1 for LTX-Video",
            "x-tunable": False,
            "x-affects": {"temporal_coherence": "-", "generation_seconds": "+"},
            "x-cost": True,
        },
        "fps": {
            "type": "integer",
            "minimum": 1,
            "maximum": 60,
            "default": 8,
            "description": "frames per second of the encoded video (use the model's training "
            "rate; LTX-Video also receives it as frame_rate)",
            "x-tunable": False,
        },
        "height": {
            "type": "integer",
            "minimum": 64,
            "maximum": 2048,
            "multipleOf": 8,
            "default": 480,
            "description": "frame height in pixels (the model may need a multiple of 16 or 32)",
            "x-tunable": False,
            "x-affects": {"visual_quality": "+", "blur": "-", "generation_seconds": "+"},
            "x-cost": True,
        },
        "width": {
            "type": "integer",
            "minimum": 64,
            "maximum": 2048,
            "multipleOf": 8,
            "default": 720,
            "description": "frame width in pixels (the model may need a multiple of 16 or 32)",
            "x-tunable": False,
            "x-affects": {"visual_quality": "+", "blur": "-", "generation_seconds": "+"},
            "x-cost": True,
        },
        "negative_prompt": {
            "type": "string",
            "maxLength": 2000,
            "default": "",
            "description": "what the video should not show; empty for none (free text: "
            "not searched by the improver)",
            "x-tunable": False,
        },
        "scheduler": {
            "type": "string",
            "enum": ["default"],
            "default": "default",
            "description": "the noise scheduler, by diffusers class name; 'default' keeps the "
            "checkpoint's own",
        },
        "seed": {
            "type": "integer",
            "minimum": -1,
            "maximum": 2**32 - 1,
            "default": -1,
            "description": "random seed for the initial noise; -1 draws a new one per job",
            "x-tunable": False,
        },
    },
}


def declaration(scheduler_names: list[str], defaults: dict[str, Any] | None = None) -> dict:
    """The parameter space to register: PARAMETERS with the model's compatible schedulers and
    any overridden defaults."""
    space = json.loads(json.dumps(PARAMETERS))
    properties = space["properties"]
    properties["scheduler"]["enum"] = ["default", *sorted(set(scheduler_names) - {"default"})]
    for key, value in (defaults or {}).items():
        if key not in properties:
            raise ValueError(f"--default {key}: no such parameter; one of {', '.join(properties)}")
        properties[key]["default"] = value
    return space


def default_slug(model: str) -> str:
    """``diffusers-`` and the model's name: THUDM/CogVideoX-2b → diffusers-cogvideox-2b."""
    name = Path(model.rstrip("/")).name.lower()
    name = re.sub(r"[^a-z0-9_-]+", "-", name).strip("-_") or "model"
    return f"diffusers-{name}"[:64].rstrip("-_")


def parse_default(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected KEY=VALUE")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw  # a bare string, e.g. negative_prompt=blurry
    return key.strip(), value


# --- the model ------------------------------------------------------------------------------

# Declared parameters passed to the pipeline's call under their own names, when it takes them.
CALL_PARAMETERS = (
    "num_inference_steps",
    "guidance_scale",
    "num_frames",
    "height",
    "width",
    "negative_prompt",
)


class Model:
    """A loaded diffusers pipeline and what the worker needs to know about its call."""

    def __init__(self, model: str, device: str, dtype: str, cpu_offload: bool = False) -> None:
        import diffusers
        import torch

        self.name = model
        self.device = device
        self.torch = torch
        self.diffusers = diffusers
        # diffusers 0.42 renamed torch_dtype to dtype; older releases know only torch_dtype.
        version = tuple(int(part) for part in re.findall(r"\d+", diffusers.__version__)[:2])
        dtype_key = "dtype" if version >= (0, 42) else "torch_dtype"
        self.pipe = diffusers.DiffusionPipeline.from_pretrained(
            model, **{dtype_key: getattr(torch, dtype)}
        )
        if cpu_offload:
            self.pipe.enable_model_cpu_offload()
        else:
            self.pipe.to(device)
        self.pipe.set_progress_bar_config(disable=True)
        self.accepts = set(inspect.signature(self.pipe.__call__).parameters)
        if "prompt" not in self.accepts:
            raise TypeError(f"{type(self.pipe).__name__} does not take a prompt")
        self.default_scheduler = self.pipe.scheduler

    @property
    def kind(self) -> str:
        return type(self.pipe).__name__

    def scheduler_names(self) -> list[str]:
        compatible = getattr(self.default_scheduler, "compatibles", None) or []
        names = {cls.__name__ for cls in compatible}
        names.add(type(self.default_scheduler).__name__)
        return sorted(n for n in names if hasattr(self.diffusers, n))

    def use_scheduler(self, name: str) -> None:
        """Swap the scheduler by class name, built from the checkpoint's scheduler config."""
        if name == "default" or name == type(self.default_scheduler).__name__:
            self.pipe.scheduler = self.default_scheduler
            return
        if name not in self.scheduler_names():
            raise ValueError(f"scheduler {name!r} is not compatible with {self.kind}")
        cls = getattr(self.diffusers, name)
        self.pipe.scheduler = cls.from_config(self.default_scheduler.config)

    def generate(
        self, prompt: str, params: dict[str, Any], on_step: Callable[[int, int], None]
    ) -> tuple[Any, int]:
        """Frames (uint8, frames × height × width × 3) and the seed used."""
        self.use_scheduler(params.get("scheduler", "default"))
        seed = int(params.get("seed", -1))
        if seed < 0:
            seed = random.SystemRandom().randrange(2**32)
        # A CPU generator gives the same noise for a seed on every device.
        generator = self.torch.Generator("cpu").manual_seed(seed)
        steps = int(params.get("num_inference_steps", 50))
        kwargs: dict[str, Any] = {"generator": generator, "output_type": "np"}
        ignored = []
        for key in CALL_PARAMETERS:
            if key not in params or (key == "negative_prompt" and not params[key]):
                continue
            if key in self.accepts:
                kwargs[key] = params[key]
            else:
                ignored.append(key)
        if ignored:
            log.info("%s takes no %s; ignored", self.kind, ", ".join(ignored))
        if "fps" in params and "frame_rate" in self.accepts:  # LTX-Video conditions on it
            kwargs["frame_rate"] = params["fps"]

        if "callback_on_step_end" in self.accepts:  # Wan, CogVideoX, LTX-Video, …

            def step_end(pipe: Any, step: int, timestep: Any, callback_kwargs: dict) -> dict:
                on_step(step + 1, steps)
                return callback_kwargs

            kwargs["callback_on_step_end"] = step_end
        elif "callback" in self.accepts:  # older pipelines (TextToVideoSD)
            kwargs["callback"] = lambda step, timestep, latents: on_step(step + 1, steps)
            kwargs["callback_steps"] = 1
        with self.torch.inference_mode():
            result = self.pipe(prompt, **kwargs)
        if not hasattr(result, "frames"):
            raise TypeError(f"{self.kind} returned no .frames: not a text-to-video pipeline")
        return video_array(result.frames), seed


def video_array(frames: Any) -> Any:
    """The first video of a pipeline's ``.frames`` as uint8 (frames, height, width, 3).

    Pipelines return a batch as an array (float 0-1), a tensor, or lists of PIL images.
    """
    import numpy as np

    video = frames[0]
    if hasattr(video, "detach"):  # a torch tensor
        video = video.detach().float().cpu().numpy()
    if isinstance(video, list):
        video = np.stack([np.asarray(image.convert("RGB")) for image in video])
    video = np.asarray(video)
    if video.ndim != 4 or video.shape[-1] not in (1, 3, 4):
        raise ValueError(f"expected frames × height × width × channels, got {video.shape}")
    if video.dtype != np.uint8:
        video = (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    if video.shape[-1] == 1:
        video = np.repeat(video, 3, axis=-1)
    return np.ascontiguousarray(video[..., :3])


# --- the video --------------------------------------------------------------------------------


def even(video: Any) -> Any:
    """yuv420p needs even width and height: repeat the last row or column when odd."""
    import numpy as np

    pad_h, pad_w = video.shape[1] % 2, video.shape[2] % 2
    if not (pad_h or pad_w):
        return video
    return np.pad(video, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")


def encode_mp4(video: Any, fps: int, path: Path, crf: int = 18) -> None:
    """H.264 in MP4, yuv420p (what browsers play), moov atom first (+faststart)."""
    import av

    video = even(video)
    height, width = video.shape[1:3]
    with av.open(
        str(path), mode="w", format="mp4", container_options={"movflags": "+faststart"}
    ) as container:
        stream = container.add_stream(
            "libx264", rate=int(fps), options={"crf": str(crf), "preset": "medium"}
        )
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for array in video:
            frame = av.VideoFrame.from_ndarray(array, format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_poster(video: Any, path: Path) -> None:
    """The middle frame as a JPEG (Pillow comes with diffusers)."""
    from PIL import Image

    Image.fromarray(video[len(video) // 2]).save(path, format="JPEG", quality=90)


# --- the loop ---------------------------------------------------------------------------------


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def run_job(
    client: FeedbackLoopClient,
    model: Model,
    job: Job,
    workdir: Path,
    *,
    lease_seconds: int,
    progress_seconds: float,
) -> str:
    """Generate one job and upload it; returns the outcome."""
    log.info("job %s (%s r%s): %s", job.id, job.pipeline, job.revision, job.prompt[:60])
    video_path, poster_path = workdir / f"{job.id}.mp4", workdir / f"{job.id}.jpg"
    started, cpu_started = time.monotonic(), time.process_time()

    def acknowledged(body: dict[str, Any]) -> None:
        log.info("job %s: progress %.3f acknowledged", job.id, body.get("progress") or 0.0)

    try:
        with LeaseKeeper(
            client,
            job,
            lease_seconds,
            progress_step=0.0,
            min_gap_seconds=progress_seconds,
            on_beat=acknowledged,
        ) as lease:

            def on_step(step: int, steps: int) -> None:
                lease.report(DENOISE_SHARE * min(step, steps) / max(steps, 1))

            video, seed = model.generate(job.prompt, job.params, on_step)
            denoised = time.monotonic()
            lease.check()
            encode_mp4(video, job.params.get("fps", 8), video_path)
            write_poster(video, poster_path)
            lease.report(0.95)
    except LeaseLost as exc:
        log.warning("%s: dropped", exc)
        return "lost"
    except KeyboardInterrupt:
        client.fail(job.id, job.lease_id, "worker stopped", requeue=True)
        raise
    except Exception as exc:  # noqa: BLE001 - any model or encoding error is reported on the job
        log.exception("job %s: generation failed", job.id)
        client.fail(job.id, job.lease_id, f"{type(exc).__name__}: {exc}")
        return "failed"

    wall = time.monotonic() - started
    try:
        generation = client.complete(
            job.id,
            job.lease_id,
            video_path,
            poster_path,
            generation_seconds=round(wall, 3),
            cpu_seconds=round(time.process_time() - cpu_started, 3),
            peak_rss_bytes=peak_rss_bytes(),
        )
        metrics = {
            "denoise_seconds": denoised - started,
            "encode_seconds": time.monotonic() - denoised,
            "frames": float(len(video)),
        }
        if model.torch.cuda.is_available() and model.device.startswith("cuda"):
            metrics["peak_gpu_memory_bytes"] = float(model.torch.cuda.max_memory_allocated())
        client.upload_metrics(job.id, metrics)
    except ApiError as exc:
        log.error("job %s: upload refused: %s", job.id, exc)
        return "refused"
    finally:
        video_path.unlink(missing_ok=True)
        poster_path.unlink(missing_ok=True)
    log.info("job %s: %s in %.1f s (seed %d)", job.id, generation["status"], wall, seed)
    return generation["status"]


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the site, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--token",
        default=os.environ.get("FEEDBACKLOOP_TOKEN"),
        help="worker token (default: $FEEDBACKLOOP_TOKEN)",
    )
    parser.add_argument("--model", required=True, help="a Hub id or a save_pretrained folder")
    parser.add_argument("--slug", help="the pipeline's slug (default: diffusers-<model name>)")
    parser.add_argument("--name", help="the pipeline's display name (default: the model)")
    parser.add_argument(
        "--device", default=None, help="torch device (default: cuda if available, else cpu)"
    )
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    parser.add_argument(
        "--cpu-offload",
        action="store_true",
        help="keep weights on the CPU and move each part to the GPU when used (less memory)",
    )
    parser.add_argument(
        "--default",
        type=parse_default,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a declared default (JSON value), e.g. num_frames=49; repeatable",
    )
    parser.add_argument("--once", action="store_true", help="stop after one job")
    parser.add_argument("--max-jobs", type=int, default=0, help="stop after N jobs (0: never)")
    parser.add_argument(
        "--idle-exit", type=float, default=0, help="stop after this many seconds with no job"
    )
    parser.add_argument("--poll-seconds", type=float, default=5.0, help="between empty polls")
    parser.add_argument("--lease-seconds", type=int, default=600)
    parser.add_argument(
        "--progress-seconds",
        type=float,
        default=1.0,
        help="least time between progress heartbeats (0: one per denoising step)",
    )
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a worker token is needed: --token or FEEDBACKLOOP_TOKEN")
    if args.once:
        args.max_jobs = 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    slug = args.slug or default_slug(args.model)
    client = FeedbackLoopClient(args.url, token=args.token)

    import torch

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    log.info("loading %s on %s (%s)", args.model, device, args.dtype)
    model = Model(args.model, device, args.dtype, cpu_offload=args.cpu_offload)
    space = declaration(model.scheduler_names(), dict(args.default))
    pipeline = client.register_pipeline(
        slug,
        (args.name or args.model)[:200],
        space,
        description=f"{model.kind} ({args.model}), served by examples/diffusers_worker.py",
    )
    active = pipeline.get("active_revision") or {}
    log.info(
        "serving pipeline %s (schema v%s, active r%s)",
        slug,
        pipeline.get("schema_version"),
        active.get("number"),
    )

    done = succeeded = 0
    idle_since = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="diffusers-worker-") as tmp:
        while args.max_jobs <= 0 or done < args.max_jobs:
            job = client.claim(pipelines=[slug], lease_seconds=args.lease_seconds)
            if job is None:
                if args.idle_exit and time.monotonic() - idle_since >= args.idle_exit:
                    log.info("no job for %.0f s; stopping", args.idle_exit)
                    break
                time.sleep(args.poll_seconds)
                continue
            outcome = run_job(
                client,
                model,
                job,
                Path(tmp),
                lease_seconds=args.lease_seconds,
                progress_seconds=args.progress_seconds,
            )
            done += 1
            succeeded += outcome == "succeeded"
            idle_since = time.monotonic()
    log.info("%d job(s) done, %d succeeded", done, succeeded)
    return 0 if succeeded == done else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
