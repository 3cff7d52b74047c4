"""A remote generator worker: drain a feedbackloop site's job queue over the REST API.

It uses the built-in renderer (``pipelines/builtin/renderer.py``) as its "model", so it runs
anywhere; a real GPU worker swaps ``render_video`` for its own model and keeps the loop
(``examples/diffusers_worker.py`` does that for a diffusers model). The API calls go through the
client package (``clients/python``, needs only requests); the renderer and the resource meter
are the project's own code, so unlike a GPU worker this one imports the project and needs it
installed with its dependencies (Django comes along through the package, OpenCV and PyAV through
the renderer), though it touches no database: it talks to the site only over the API. Make a
token on the site, then:

    python manage.py create_worker_token my-worker --pipelines builtin   # prints the key once
    .venv/bin/python examples/remote_worker.py --url http://127.0.0.1:8000 --token flw_…

Options: --pipeline SLUG (default builtin; only jobs of that pipeline are claimed), --max-jobs N
(stop after N jobs), --idle-exit SECONDS (stop after that long with an empty queue), --poll
SECONDS, --lease-seconds SECONDS. The token can also come from the FEEDBACKLOOP_TOKEN
environment variable. Ctrl-C puts the current job back in the queue.

The loop: read the pipeline's configuration (ETag-cached), claim a job, render it while a
thread keeps the lease alive with heartbeats and progress, upload the video with its poster and
script, post the worker's own metrics; a render error fails the job with the error text.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from feedbackloop_client import (  # noqa: E402
    ApiError,
    FeedbackLoopClient,
    Job,
    LeaseKeeper,
    LeaseLost,
)

from generation.resources import ResourceMeter  # noqa: E402
from pipelines.builtin.renderer import render_video  # noqa: E402

log = logging.getLogger("remote_worker")


def run_job(client: FeedbackLoopClient, job: Job, lease_seconds: int, workdir: Path) -> str:
    """Render one job and upload it; returns the final status."""
    log.info("job %s (r%s): %s", job.id, job.revision, job.prompt[:60])
    video_path, poster_path = workdir / f"{job.id}.mp4", workdir / f"{job.id}.jpg"
    try:
        with LeaseKeeper(client, job, lease_seconds) as lease, ResourceMeter() as meter:
            result = render_video(
                prompt=job.prompt,
                params=job.params,
                output_path=video_path,
                poster_path=poster_path,
                progress=lease.report,
            )
        lease.check()
    except LeaseLost:
        log.warning("job %s: dropped, the lease was lost", job.id)
        return "lost"
    except KeyboardInterrupt:
        client.fail(job.id, job.lease_id, "worker stopped", requeue=True)
        raise
    except Exception as exc:  # noqa: BLE001 - any render error is reported on the job
        log.exception("job %s: render failed", job.id)
        client.fail(job.id, job.lease_id, f"{type(exc).__name__}: {exc}")
        return "failed"

    try:
        usage = meter.usage
        generation = client.complete(
            job.id,
            job.lease_id,
            video_path,
            poster_path,
            result.script.to_dict(),
            generation_seconds=round(usage.wall_seconds, 3),
            cpu_seconds=round(usage.cpu_seconds, 3),
            peak_rss_bytes=usage.peak_rss_bytes,
        )
        client.upload_metrics(
            job.id,
            {
                "render_seconds": usage.wall_seconds,
                "render_fps": result.frames / usage.wall_seconds if usage.wall_seconds else 0.0,
                "frames": result.frames,
            },
        )
    except ApiError as exc:
        log.error("job %s: upload refused: %s", job.id, exc)
        return "refused"
    finally:
        video_path.unlink(missing_ok=True)
        poster_path.unlink(missing_ok=True)
    log.info("job %s: %s, %.1f s", job.id, generation["status"], usage.wall_seconds)
    return generation["status"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the site, e.g. http://127.0.0.1:8000")
    parser.add_argument(
        "--token",
        default=os.environ.get("FEEDBACKLOOP_TOKEN"),
        help="worker token (default: $FEEDBACKLOOP_TOKEN)",
    )
    parser.add_argument(
        "--pipeline", default="builtin", help="the pipeline whose jobs to take (default: builtin)"
    )
    parser.add_argument("--max-jobs", type=int, default=0, help="stop after N jobs (0: never)")
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=0,
        help="stop after this many seconds with no job (0: never)",
    )
    parser.add_argument("--poll", type=float, default=2.0, help="seconds between empty polls")
    parser.add_argument("--lease-seconds", type=int, default=120)
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a worker token is needed: --token or FEEDBACKLOOP_TOKEN")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    client = FeedbackLoopClient(args.url, token=args.token)
    done = 0
    idle_since = time.monotonic()
    revision = None
    with tempfile.TemporaryDirectory(prefix="remote-worker-") as tmp:
        while args.max_jobs <= 0 or done < args.max_jobs:
            config = client.config(args.pipeline)
            if config["revision"] != revision:
                revision = config["revision"]
                log.info(
                    "configuration: %s r%s (%s)",
                    config["pipeline"],
                    revision,
                    config["params"].get("model_variant", "?"),
                )
            job = client.claim(pipelines=[args.pipeline], lease_seconds=args.lease_seconds)
            if job is None:
                if args.idle_exit and time.monotonic() - idle_since >= args.idle_exit:
                    log.info("no job for %.0f s; stopping", args.idle_exit)
                    break
                time.sleep(args.poll)
                continue
            run_job(client, job, args.lease_seconds, Path(tmp))
            done += 1
            idle_since = time.monotonic()
    log.info("%d job(s) done", done)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
