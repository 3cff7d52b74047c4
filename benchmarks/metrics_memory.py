"""Peak memory of the metrics pass on a long video: must stay under 300 MB whatever the length.

Generates a 10-minute 720p H.264 clip (synthetic content, libx264 preset fast) in a temporary
folder, then runs videometrics.analyze_video on it in a fresh child process — once with OCR off
and once with a script (OCR on) — and prints each child's peak RSS (VmHWM), alongside its RSS
right after imports. Exits 1 if a peak reaches the limit. Linux only (/proc).

    .venv/bin/python benchmarks/metrics_memory.py [--minutes 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from videometrics.synthetic import encode_frames, script_for, synthetic_frames  # noqa: E402

LIMIT_MB = 300.0

# Runs in the child: imports, notes RSS, analyses, prints one JSON line with the peak RSS.
_CHILD = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import psutil
from videometrics import analyze_video, load_script
rss_after_import = psutil.Process().memory_info().rss
script = load_script(sys.argv[3]) if len(sys.argv) > 3 else None
started = time.perf_counter()
result = analyze_video(sys.argv[2], script=script, ocr=script is not None)
elapsed = time.perf_counter() - started
# VmHWM is this process image's own high-water mark. ru_maxrss would not do: Linux carries it
# across exec, so it would include the parent's RSS at fork time (the clip generator).
with open("/proc/self/status") as status:
    peak_kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({
    "peak_mb": peak_kb / 1024.0,
    "after_import_mb": rss_after_import / 2**20,
    "seconds": elapsed,
    "frames": result["frames"],
    "ocr_frames": result["ocr_frames"],
    "text_cer": result["text_cer"],
}))
"""


def measure(clip: Path, script_file: Path | None) -> dict:
    cmd = [sys.executable, "-c", _CHILD, str(ROOT), str(clip)]
    if script_file is not None:
        cmd.append(str(script_file))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--keep", type=Path, help="write the clip here and keep it")
    args = parser.parse_args(argv)

    seconds = args.minutes * 60.0
    # One caption every 10 s, as a long narrated video would have.
    texts = [
        f"Chapter {i + 1}: solar panels and storage" for i in range(max(1, int(seconds // 10)))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        clip = folder / "long_720p.mp4"
        script_file = folder / "long_720p.script.json"
        script_file.write_text(json.dumps(script_for(texts, seconds)))
        if not clip.exists():
            t0 = time.perf_counter()
            encode_frames(
                synthetic_frames(1280, 720, args.fps, seconds, texts, grain=1.5),
                clip,
                args.fps,
                crf=20,
                preset="fast",
            )
            print(f"clip built in {time.perf_counter() - t0:.0f} s")
        print(
            f"clip: 1280x720 H.264, {args.minutes:g} min @ {args.fps:g} fps, "
            f"{clip.stat().st_size / 1e6:.0f} MB"
        )
        ok = True
        for label, script in (("OCR off", None), ("OCR on (script)", script_file)):
            m = measure(clip, script)
            within = m["peak_mb"] < LIMIT_MB
            ok &= within
            print(
                f"{label}: peak RSS {m['peak_mb']:.0f} MB "
                f"(after imports {m['after_import_mb']:.0f} MB), "
                f"{m['frames']} frames in {m['seconds']:.0f} s"
                + (f", {m['ocr_frames']} frames OCR'd, text_cer {m['text_cer']}" if script else "")
                + f" — {'OK' if within else 'OVER'} (limit {LIMIT_MB:.0f} MB)"
            )
    print("PASS" if ok else "FAIL: peak RSS over the limit")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
