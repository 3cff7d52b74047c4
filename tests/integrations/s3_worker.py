"""A generator worker for the object-storage test, run as its own process.

It imports no Django and none of the site's code, runs in a folder of its own and never sees the
web host's media folder: it claims a job over the API, encodes a small video with PyAV, PUTs it
(and a poster) to the bucket with the presigned URLs the API hands out, and completes the job
with the object keys. ``--multipart`` uploads the files to complete/ instead (the older path);
``--not-a-video`` PUTs a text file as the video. Prints one JSON object: what happened.

    python s3_worker.py URL TOKEN [--multipart | --not-a-video]
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

import av
import numpy as np
import requests
from PIL import Image


def encode(path: Path, frames: int = 24, size: tuple[int, int] = (96, 64)) -> None:
    width, height = size
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            x = np.linspace(0, 255, width, dtype=np.float32)
            rgb = np.zeros((height, width, 3), dtype=np.uint8)
            rgb[..., 0] = ((x + i * 8) % 256).astype(np.uint8)
            rgb[..., 1] = 96
            rgb[..., 2] = np.arange(height, dtype=np.uint8)[:, None] * 3
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main(url: str, token: str, mode: str) -> dict:
    api = requests.Session()
    api.headers["Authorization"] = f"Token {token}"
    claim = api.post(f"{url}/api/v1/jobs/claim/", json={}, timeout=30)
    claim.raise_for_status()
    job = claim.json()
    job_id, lease_id = job["id"], job["lease"]["lease_id"]
    folder = Path(tempfile.mkdtemp(prefix="worker-"))
    video = folder / "video.mp4"
    encode(video)
    poster = io.BytesIO()
    Image.new("RGB", (96, 64), (200, 90, 40)).save(poster, format="PNG")

    if mode == "--multipart":
        with open(video, "rb") as handle:
            done = api.post(
                f"{url}/api/v1/jobs/{job_id}/complete/",
                data={"lease_id": lease_id},
                files={"video": ("video.mp4", handle, "video/mp4")},
                timeout=120,
            )
        return {"job": job_id, "status": done.status_code, "body": done.json()}

    targets = api.post(
        f"{url}/api/v1/jobs/{job_id}/upload-url/", json={"lease_id": lease_id}, timeout=30
    )
    targets.raise_for_status()
    targets = targets.json()
    body = b"not a video at all\n" if mode == "--not-a-video" else video.read_bytes()
    # The bucket, not the web host: a plain PUT to the presigned URL, no credentials.
    put_video = requests.put(targets["video"]["url"], data=body, timeout=60)
    put_poster = requests.put(targets["poster"]["url"], data=poster.getvalue(), timeout=60)
    done = api.post(
        f"{url}/api/v1/jobs/{job_id}/complete/",
        json={
            "lease_id": lease_id,
            "video_key": targets["video"]["key"],
            "poster_key": targets["poster"]["key"],
            "script": {"scenes": ["made far away"]},
            "generation_seconds": 1.5,
        },
        timeout=120,
    )
    return {
        "job": job_id,
        "status": done.status_code,
        "body": done.json(),
        "put": [put_video.status_code, put_poster.status_code],
        "keys": [targets["video"]["key"], targets["poster"]["key"]],
        "video_bytes": len(body),
        "video_url_host": targets["video"]["url"].split("/")[2],
    }


if __name__ == "__main__":
    mode = sys.argv[3] if len(sys.argv) > 3 else ""
    print(json.dumps(main(sys.argv[1], sys.argv[2], mode)))
