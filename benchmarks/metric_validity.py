"""Do the project's metrics agree with trusted references? Graded degradations, Spearman tables.

For several kinds of content — natural-looking synthetic clips (fractal zoom, moving textures,
camera pan) and built-in renders at several parameter sets — the suite makes graded
degradations (CRF 18→51, blur, noise, frame drop, duplicated frames, a freeze, brightness flicker
from sub-visible to strong, judder, captions garbled then removed), scores every clip with
full-reference SSIM and PSNR on luma (scikit-image, against the pristine frames shown at the same
time; VMAF only if this FFmpeg build has libvmaf) and with videometrics, and prints:

* per family and content, the Spearman correlation of each composite with SSIM and PSNR over the
  levels (the text family's reference is the share of caption characters left intact, since
  SSIM/PSNR do not read text), or its largest move when the family should not affect it;
* per metric, the Spearman correlation with the degradation level on each family it claims to
  measure (a negative value runs the wrong way);
* a summary against the targets: ρ ≥ 0.9 where a family should affect a composite, a move of at
  most FLAT_TOLERANCE where it should not, and at most SUBVISIBLE_TOLERANCE for a 1-code-value
  flicker.

Clips and reference scores are cached (default var/metric_validity/, keyed by a content
version), so a second run only recomputes the metrics. Renders come from the built-in renderer's
`render_video` (pipelines.builtin.renderer, or generation.renderer in older trees), rendered once
losslessly into the cache.

    .venv/bin/python benchmarks/metric_validity.py [--quick] [--jobs 2] [--cache DIR]
        [--content camera_pan,render_default] [--json FILE]

Exit status is 0 whatever the figures: this is a measurement, read the summary.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import av  # noqa: E402
import numpy as np  # noqa: E402

from videometrics import analyze_video  # noqa: E402
from videometrics import degradations as deg  # noqa: E402
from videometrics.synthetic import (  # noqa: E402
    NATURAL_KINDS,
    encode_frames,
    natural_frames,
    script_for,
)

# Bump when content or degradations change: invalidates cached clips (renders and synthetic
# content are versioned apart, so that a change of one does not re-render the other).
RENDER_VERSION = 3
NATURAL_VERSION = 5
# A family whose degradation changed gets a version of its own (its clips alone are rebuilt).
FAMILY_VERSIONS = {"judder": 2}
FPS = 24
BASE_CRF = 18
PRESET = "veryfast"
TEXTS = ("Solar power saves money", "Panels last for decades", "Install yours today")
RENDER_PROMPT = "A short briefing about solar panels for homeowners"
# Built-in renders at several parameter sets (size, fps and length are set by the suite).
RENDER_SETS: dict[str, dict[str, Any]] = {
    "render_default": {},
    "render_hq_fast_cut": {
        "model_variant": "hq",
        "camera_speed": 2.0,
        "grain": 0.0,
        "transition_style": "cut",
    },
    "render_draft_grainy": {
        "model_variant": "draft",
        "camera_speed": 1.0,
        "grain": 0.08,
        "transition_style": "wipe",
        "text_scale": 1.3,
    },
}
CONTENTS = (*NATURAL_KINDS, *RENDER_SETS)

FLAT_TOLERANCE = 0.05
SUBVISIBLE_TOLERANCE = 0.02
TARGET_RHO = 0.9


@dataclass(frozen=True)
class Family:
    levels: tuple[float, ...]  # level 0 is the pristine clip, then by increasing severity
    unit: str
    affects: tuple[str, ...]  # composites this family should move
    # References a composite is judged against. SSIM is nearly blind to a global brightness
    # offset (its luminance term moves by ~1e-4 for a few code values), so flicker is judged
    # by PSNR alone; both are printed.
    references: tuple[str, ...] = ("ssim", "psnr")
    # Spatial families: a level whose SSIM is within this of the pristine clip's is below
    # visibility (the codec has absorbed it), so the composite must stay flat there instead of
    # ranking it. Temporal defects barely move SSIM yet are plainly visible, so they have none.
    subvisible_ssim: float | None = None
    subvisible_levels: tuple[float, ...] = ()  # levels below visibility by construction


FAMILIES: dict[str, Family] = {
    "crf": Family(
        (18, 23, 28, 33, 38, 44, 51), "x264 CRF", ("visual_quality",), subvisible_ssim=0.005
    ),
    "blur": Family(
        (0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0),
        "Gaussian σ px",
        ("visual_quality",),
        subvisible_ssim=0.005,
    ),
    "noise": Family(
        (0, 2, 4, 6, 9, 13, 18), "noise σ code values", ("visual_quality",), subvisible_ssim=0.005
    ),
    "drop": Family((1, 2, 3, 4, 6, 8, 15), "1 frame kept in n", ("temporal_coherence",)),
    "duplicate": Family(
        (0, 0.03, 0.06, 0.1, 0.15, 0.22, 0.3), "share of repeated frames", ("temporal_coherence",)
    ),
    "freeze": Family((0, 2, 4, 8, 12, 18, 24), "frozen frames", ("temporal_coherence",)),
    "flicker": Family(
        (0, 1, 2, 3, 4, 6, 10),
        "brightness step, code values",
        ("temporal_coherence",),
        ("psnr",),
        subvisible_levels=(1,),
    ),
    "judder": Family(
        (1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.42), "content rate / display rate", ("temporal_coherence",)
    ),
    "text": Family(
        (0, 0.05, 0.1, 0.2, 0.35, 0.6, 1.0),
        "share of letters garbled",
        ("factual_accuracy",),
        ("text_intact",),
    ),
}
COMPOSITES = ("visual_quality", "temporal_coherence", "factual_accuracy")
# Composites a family must leave alone. factual_accuracy is measured (OCR on) in the text family
# only: OCR on every clip would triple the run time, and heavy blur, noise or compression make
# captions illegible, which rightly lowers it.
NOT_AFFECTED: dict[str, tuple[str, ...]] = {
    "crf": ("temporal_coherence",),
    "blur": ("temporal_coherence",),
    "noise": ("temporal_coherence",),
    "drop": ("visual_quality",),
    "duplicate": ("visual_quality",),
    "freeze": ("visual_quality",),
    "flicker": ("visual_quality",),
    "judder": ("visual_quality",),
    "text": ("visual_quality", "temporal_coherence"),
}
# Exceptions to flatness, (family, composite) -> last level index that must stay flat: x264 at
# CRF 51 stops updating slow-moving content for several frames (the decoded picture holds, then
# jumps), which is a real stall that temporal_coherence counts; below that CRF must not move it.
# Removing captions (the text family's last level) removes their strokes, a large share of a
# frame's fine detail: a different picture, not a degradation of the same one.
FLAT_UP_TO: dict[tuple[str, str], int] = {
    ("crf", "temporal_coherence"): 5,
    ("text", "visual_quality"): 5,
}
# metric -> (families it claims to measure, +1 if it rises with the defect, −1 if it falls)
METRIC_CLAIMS: dict[str, tuple[tuple[str, ...], int]] = {
    "sharpness": (("blur",), -1),
    "noise_sigma": (("noise",), +1),
    "blockiness": (("crf",), +1),
    "quantizer": (("crf",), +1),
    "flicker": (("flicker",), +1),
    "jitter": (("drop", "duplicate", "freeze", "judder"), +1),
    "text_cer": (("text",), +1),
}


# ---------------------------------------------------------------------------------------------
# Content


@dataclass
class Content:
    name: str
    frames: list[np.ndarray]
    script: dict[str, Any]
    # Draws the clip again with other captions (synthetic content), or None when the captions
    # are part of a render: then the text family garbles the script the clip is checked against.
    redraw: Callable[[tuple[str, ...]], list[np.ndarray]] | None


def _cache_folder(cache: Path, name: str, size: tuple[int, int], seconds: float) -> Path:
    version = RENDER_VERSION if name in RENDER_SETS else NATURAL_VERSION
    return cache / f"v{version}_{size[0]}x{size[1]}_{seconds:g}s" / name


def _import_renderer() -> Any:
    for module in ("pipelines.builtin.renderer", "generation.renderer"):
        try:
            return importlib.import_module(module)
        except ImportError:
            continue
    raise ImportError("no built-in renderer found (pipelines.builtin or generation)")


def _decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def _render_content(name: str, size: tuple[int, int], seconds: float, cache: Path) -> Content:
    """A lossless render at `size`, made once and kept in the cache with its script."""
    folder = _cache_folder(cache, name, size, seconds).parent
    folder.mkdir(parents=True, exist_ok=True)
    video, script_file = folder / f"{name}.source.mp4", folder / f"{name}.script.json"
    if not (video.exists() and script_file.exists()):
        renderer = _import_renderer()
        params = {
            **RENDER_SETS[name],
            "width": size[0],
            "height": size[1],
            "fps": FPS,
            "seconds_per_scene": seconds / 3.0,
            "crf": 0,  # lossless: the pristine reference
            "preset": "ultrafast",
        }
        result = renderer.render_video(
            prompt=RENDER_PROMPT,
            params=params,
            output_path=video,
            poster_path=folder / f"{name}.poster.jpg",
        )
        script_file.write_text(json.dumps(result.script.to_dict()))
    script = json.loads(script_file.read_text())
    return Content(name, _decode_rgb(video), script, None)


def load_content(name: str, size: tuple[int, int], seconds: float, cache: Path) -> Content:
    if name in RENDER_SETS:
        return _render_content(name, size, seconds, cache)
    seed = CONTENTS.index(name)

    def redraw(texts: tuple[str, ...]) -> list[np.ndarray]:
        return list(natural_frames(name, size[0], size[1], FPS, seconds, texts, seed=seed))

    return Content(name, redraw(TEXTS), script_for(list(TEXTS), seconds), redraw)


# ---------------------------------------------------------------------------------------------
# Degrading one clip


def _garbled_script(script: dict[str, Any], fraction: float) -> dict[str, Any]:
    scenes = [
        {**s, "text": deg.garble(s["text"], fraction, seed=i)}
        for i, s in enumerate(script["scenes"])
    ]
    return {**script, "scenes": scenes}


def degrade(content: Content, family: str, level: float) -> tuple[list[np.ndarray], int, dict]:
    """(frames, crf, script to check against) for one clip."""
    frames, n = content.frames, len(content.frames)
    script, crf = content.script, BASE_CRF
    if family == "crf":
        crf = int(level)
    elif family == "blur":
        frames = deg.blur(frames, level)
    elif family == "noise":
        frames = deg.add_noise(frames, level, seed=5)
    elif family == "drop":
        frames = deg.retime(frames, deg.hold_every(n, int(level)))
    elif family == "duplicate":
        frames = deg.retime(frames, deg.duplicates(n, level, seed=3))
    elif family == "freeze":
        frames = deg.retime(frames, deg.freeze(n, int(level)))
    elif family == "flicker":
        frames = deg.flicker(frames, level, seed=9)
    elif family == "judder":
        frames = deg.retime(frames, deg.judder(n, level))
    elif family == "text":
        if level > 0 and content.redraw is not None:
            # Synthetic content shows garbled captions (none at all at 1.0); the script is right.
            # Removed text keeps its (empty) caption box: only the text changes.
            shown = tuple(
                " " * len(t) if level >= 1 else deg.garble(t, level, seed=i)
                for i, t in enumerate(TEXTS)
            )
            frames = content.redraw(shown)
        elif level > 0:
            # A render's captions are baked in: check it against a script garbled instead.
            script = _garbled_script(script, level)
    else:
        raise ValueError(family)
    return frames, crf, script


# ---------------------------------------------------------------------------------------------
# Full-reference scores


def _luma(rgb: np.ndarray) -> np.ndarray:
    # The same RGB → YUV conversion the encoder applies, so only the degradation differs.
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    return frame.to_ndarray()[: rgb.shape[0]].copy()


def reference_scores(path: Path, pristine_luma: list[np.ndarray]) -> dict[str, float]:
    """Mean SSIM (Wang et al., Gaussian σ 1.5) and PSNR of decoded luma against the pristine."""
    from skimage.metrics import structural_similarity

    ssims, mses = [], []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            y = frame.to_ndarray(format="yuv420p")[: frame.height]
            ref = pristine_luma[i]
            ssims.append(
                structural_similarity(
                    ref,
                    y,
                    data_range=255,
                    gaussian_weights=True,
                    sigma=1.5,
                    use_sample_covariance=False,
                )
            )
            mses.append(float(np.mean((ref.astype(np.float32) - y.astype(np.float32)) ** 2)))
    mse = max(float(np.mean(mses)), 1e-3)
    return {"ssim": float(np.mean(ssims)), "psnr": 10.0 * math.log10(255.0**2 / mse)}


def vmaf_available() -> bool:
    try:
        import av.filter

        return "libvmaf" in av.filter.filters_available
    except Exception:  # noqa: BLE001 - any failure means "not available"
        return False


# ---------------------------------------------------------------------------------------------
# One content: every family and level


def run_content(
    name: str, size: tuple[int, int], seconds: float, cache: Path, level_idx: tuple[int, ...]
) -> dict[str, Any]:
    import cv2

    cv2.setNumThreads(1)
    started = time.perf_counter()
    content = load_content(name, size, seconds, cache)
    folder = _cache_folder(cache, name, size, seconds)
    folder.mkdir(parents=True, exist_ok=True)
    ref_file = folder / "reference.json"
    refs: dict[str, dict[str, float]] = (
        json.loads(ref_file.read_text()) if ref_file.exists() else {}
    )
    pristine_luma: list[np.ndarray] | None = None
    rows: dict[str, list[dict[str, Any]]] = {}
    metric_s = 0.0
    for family, spec in FAMILIES.items():
        rows[family] = []
        for li in level_idx:
            level = spec.levels[li]
            key = f"{family}{FAMILY_VERSIONS.get(family, '')}_{li}"
            path = folder / f"{key}.mp4"
            if li == 0:  # every family's level 0 is the pristine CRF-18 clip
                key, path = "crf_0", folder / "crf_0.mp4"
            if path.exists():
                script = degrade_script(content, family, level)
            else:
                frames, crf, script = degrade(content, family, level)
                partial = path.with_suffix(".part.mp4")  # renamed when complete: an
                encode_frames(frames, partial, FPS, crf=crf, preset=PRESET)  # interrupted run
                partial.replace(path)  # leaves no truncated clip in the cache
            if key not in refs:
                if pristine_luma is None:
                    pristine_luma = [_luma(f) for f in content.frames]
                refs[key] = reference_scores(path, pristine_luma)
                ref_file.write_text(json.dumps(refs))
            ref = dict(refs[key])
            if family == "text":
                ref["text_intact"] = 1.0 - float(level)
            t0 = time.perf_counter()
            metrics = analyze_video(path, script=script, ocr=family == "text", threads=1)
            metric_s += time.perf_counter() - t0
            rows[family].append({"level": level, "reference": ref, "metrics": metrics})
    return {
        "content": name,
        "rows": rows,
        "seconds": time.perf_counter() - started,
        "metric_seconds": metric_s,
    }


def degrade_script(content: Content, family: str, level: float) -> dict[str, Any]:
    """The script a clip is checked against (without re-making its frames)."""
    if family == "text" and level > 0 and content.redraw is None:
        return _garbled_script(content.script, level)
    return content.script


# ---------------------------------------------------------------------------------------------
# Statistics and tables


def spearman(x: list[float], y: list[float]) -> float | None:
    """Spearman's ρ with average ranks for ties; None when either side is constant."""
    from scipy.stats import spearmanr

    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None
    return float(spearmanr(x, y).statistic)


def _fmt(x: float | None, width: int = 6, digits: int = 2) -> str:
    return f"{'—':>{width}}" if x is None else f"{x:>{width}.{digits}f}"


def composite_tables(results: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    """Per family: for the composite it should move, ρ against each reference and the values
    by level; for the composites it should leave alone, their largest move."""
    lines: list[str] = []
    summary: dict[str, Any] = {
        c: {"worst_rho": None, "worst_at": None, "worst_move": 0.0, "move_at": None}
        for c in COMPOSITES
    }
    per_family: dict[str, dict[str, Any]] = {}
    summary["families"] = per_family
    for family, spec in FAMILIES.items():
        fam = per_family.setdefault(family, {"rho": None, "moves": {}})
        levels = ", ".join(f"{x:g}" for x in spec.levels)
        lines.append(f"\n== {family} ({spec.unit}: {levels})")
        target = spec.affects[0]
        refs = ("ssim", "psnr", "text_intact") if family == "text" else ("ssim", "psnr")
        flat = NOT_AFFECTED[family]
        lines.append(
            f"{'content':<20} {target} ρ vs {'/'.join(refs)} | values by level"
            + "".join(f" | {c} max|Δ|" for c in flat)
        )
        for res in results:
            rows = res["rows"][family]
            values = [r["metrics"].get(target) for r in rows]
            line = f"{res['content']:<20}"
            if any(v is None for v in values):
                line += " (null)"
            else:
                # Levels below visibility are checked for flatness, not ranked.
                hidden = [
                    i
                    for i, r in enumerate(rows)
                    if i > 0
                    and (
                        r["level"] in spec.subvisible_levels
                        or (
                            spec.subvisible_ssim is not None
                            and abs(r["reference"]["ssim"] - rows[0]["reference"]["ssim"])
                            < spec.subvisible_ssim
                        )
                    )
                ]
                shown = [i for i in range(len(rows)) if i not in hidden]
                rhos = {
                    k: spearman(
                        [values[i] for i in shown], [rows[i]["reference"][k] for i in shown]
                    )
                    for k in refs
                }
                judged = [rhos[k] for k in spec.references if rhos[k] is not None]
                worst = min(judged) if judged else None
                line += " " + " ".join(_fmt(rhos[k], 5) for k in refs)
                line += " | " + " ".join(
                    f"{v:.3f}{'*' if i in hidden else ''}" for i, v in enumerate(values)
                )
                if worst is not None and (fam["rho"] is None or worst < fam["rho"]):
                    fam["rho"], fam["rho_at"] = worst, res["content"]
                s = summary[target]
                if worst is not None and (s["worst_rho"] is None or worst < s["worst_rho"]):
                    s["worst_rho"], s["worst_at"] = worst, f"{family}/{res['content']}"
                if worst is None:
                    s.setdefault("undefined", []).append(f"{family}/{res['content']}")
                for i in hidden:
                    move = abs(values[i] - values[0])
                    if move >= s.get("subvisible_move", -1.0):
                        s["subvisible_move"] = move
                        s["subvisible_at"] = f"{family}/{res['content']} level {rows[i]['level']:g}"
            for c in flat:
                other = [r["metrics"].get(c) for r in rows]
                if any(v is None for v in other):
                    line += " |   null"
                    continue
                last = FLAT_UP_TO.get((family, c))
                judged = [
                    v
                    for r, v in zip(rows, other, strict=True)
                    if last is None or spec.levels.index(r["level"]) <= last
                ]
                move = max(abs(v - other[0]) for v in judged)
                line += f" | {move:.3f}"
                if last is not None:
                    line += f" (all levels {max(abs(v - other[0]) for v in other):.3f})"
                fam["moves"][c] = max(fam["moves"].get(c, 0.0), move)
                s = summary[c]
                if move > s["worst_move"]:
                    s["worst_move"], s["move_at"] = move, f"{family}/{res['content']}"
            lines.append(line)
        if spec.subvisible_ssim is not None or spec.subvisible_levels:
            lines.append(
                "   * below visibility (SSIM within "
                f"{spec.subvisible_ssim} of the pristine clip, or by construction): "
                "left out of ρ, checked for flatness instead"
            )
        lines.append(
            "   reference SSIM by level: "
            + "; ".join(
                f"{res['content']} "
                + " ".join(f"{r['reference']['ssim']:.3f}" for r in res["rows"][family])
                for res in results[:2]
            )
        )
    return lines, summary


def markdown_summary(per_family: dict[str, dict[str, Any]]) -> list[str]:
    """A markdown table for docs/metrics.md: per family, the worst ρ of the composite it should
    move and the largest move of those it should not, over all contents."""
    out = [
        "| family (levels) | composite it should move: worst ρ (content) "
        "| composites it should not move: largest \\|Δ\\| |",
        "| --- | --- | --- |",
    ]
    for family, spec in FAMILIES.items():
        stats = per_family.get(family, {})
        rho, where = stats.get("rho"), stats.get("rho_at", "")
        cell = "—" if rho is None else f"{rho:.2f} ({where})"
        moves = "; ".join(f"{c} {m:.3f}" for c, m in stats.get("moves", {}).items())
        levels = ", ".join(f"{x:g}" for x in spec.levels)
        refs = "/".join(spec.references)
        out.append(f"| {family} ({levels}) | {spec.affects[0]} vs {refs}: {cell} | {moves} |")
    return out


def metric_tables(results: list[dict[str, Any]]) -> tuple[list[str], dict[str, Any]]:
    lines = [
        "\n== individual metrics: Spearman ρ with the degradation level, sign-corrected "
        "(+1 = moves the right way)"
    ]
    worst: dict[str, Any] = {}
    for metric, (families, sign) in METRIC_CLAIMS.items():
        for family in families:
            cells = []
            for res in results:
                rows = res["rows"][family]
                values = [r["metrics"].get(metric) for r in rows]
                if any(v is None for v in values):
                    cells.append(f"{res['content']}: null")
                    continue
                rho = spearman(list(range(len(rows))), values)  # by severity rank
                rho = None if rho is None else sign * rho
                cells.append(f"{res['content']}: {_fmt(rho, 5)}")
                if rho is not None and (metric not in worst or rho < worst[metric][0]):
                    worst[metric] = (rho, f"{family}/{res['content']}")
            lines.append(f"{metric:<12} on {family:<9} " + "  ".join(cells))
    return lines, worst


def subvisible_lines(results: list[dict[str, Any]]) -> tuple[list[str], float]:
    lines = ["\n== sub-visible flicker (1 code value) against the pristine clip"]
    worst = 0.0
    for res in results:
        rows = res["rows"]["flicker"]
        one = [r for r in rows if r["level"] == 1]
        if not one:
            continue
        moves = {c: abs(one[0]["metrics"][c] - rows[0]["metrics"][c]) for c in COMPOSITES[:2]}
        worst = max(worst, *moves.values())
        lines.append(
            f"{res['content']:<22} Δ visual_quality {moves['visual_quality']:.3f}  "
            f"Δ temporal_coherence {moves['temporal_coherence']:.3f}  "
            f"(SSIM {one[0]['reference']['ssim']:.4f} vs {rows[0]['reference']['ssim']:.4f})"
        )
    return lines, worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 contents, 4 levels, small clips")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=Path("var/metric_validity"))
    parser.add_argument("--content", help="comma-separated subset of: " + ", ".join(CONTENTS))
    parser.add_argument("--json", type=Path, help="write every clip's scores here")
    args = parser.parse_args(argv)

    if args.quick:
        size, seconds, level_idx = (256, 144), 2.0, (0, 1, 3, 6)
        names = ["camera_pan", "render_default"]
    else:
        size, seconds, level_idx = (480, 270), 3.0, tuple(range(7))
        names = list(CONTENTS)
    if args.content:
        names = [n.strip() for n in args.content.split(",") if n.strip()]
    unknown = set(names) - set(CONTENTS)
    if unknown:
        parser.error(f"unknown content {sorted(unknown)}")
    args.cache.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    print(
        f"{len(names)} contents × {len(FAMILIES)} families × {len(level_idx)} levels at "
        f"{size[0]}x{size[1]}, {seconds:g} s, {FPS} fps; base encode CRF {BASE_CRF} {PRESET}; "
        f"VMAF: {'available' if vmaf_available() else 'not available (no libvmaf in this FFmpeg)'}"
    )
    jobs = max(1, min(args.jobs, len(names)))
    if jobs == 1:
        results = [run_content(n, size, seconds, args.cache, level_idx) for n in names]
    else:
        with ProcessPoolExecutor(jobs) as pool:
            futures = [
                pool.submit(run_content, n, size, seconds, args.cache, level_idx) for n in names
            ]
            results = [f.result() for f in futures]

    lines, summary = composite_tables(results)
    print("\n".join(lines))
    print("\n== markdown summary (docs/metrics.md)")
    print("\n".join(markdown_summary(summary["families"])))
    mlines, mworst = metric_tables(results)
    print("\n".join(mlines))
    slines, sub_worst = subvisible_lines(results)
    print("\n".join(slines))

    print(
        f"\n== summary (targets: ρ ≥ {TARGET_RHO:.2f} where affected; "
        f"|Δ| ≤ {FLAT_TOLERANCE:.2f} where not; sub-visible |Δ| ≤ {SUBVISIBLE_TOLERANCE:.2f})"
    )
    ok = True
    for c in COMPOSITES:
        s = summary[c]
        rho_ok = s["worst_rho"] is not None and s["worst_rho"] >= TARGET_RHO
        flat_ok = s["worst_move"] <= FLAT_TOLERANCE
        ok &= rho_ok and flat_ok
        print(
            f"{c:<19} worst ρ {_fmt(s['worst_rho'])} ({s['worst_at']})  "
            f"largest move where unaffected {s['worst_move']:.3f} ({s['move_at']})  "
            f"{'ok' if rho_ok and flat_ok else 'MISSED'}"
            + (f"  undefined ρ: {', '.join(s['undefined'])}" if s.get("undefined") else "")
        )
    for metric, (rho, where) in mworst.items():
        flag = "WRONG WAY" if rho < 0 else ("weak" if rho < TARGET_RHO else "ok")
        ok &= rho >= 0
        print(f"metric {metric:<12} worst sign-corrected ρ {rho:+.2f} ({where})  {flag}")
    print(f"sub-visible flicker: largest composite move {sub_worst:.3f}")
    ok &= sub_worst <= SUBVISIBLE_TOLERANCE
    for c in COMPOSITES:
        if "subvisible_move" in summary[c]:
            move = summary[c]["subvisible_move"]
            ok &= move <= SUBVISIBLE_TOLERANCE
            print(
                f"{c}: largest move at levels below visibility {move:.3f} "
                f"({summary[c]['subvisible_at']})"
            )
    per_content = ", ".join(
        f"{r['content']} {r['seconds']:.0f} s (metrics {r['metric_seconds']:.0f} s)"
        for r in results
    )
    print(f"time: {time.perf_counter() - started:.0f} s wall; {per_content}")
    print("ALL TARGETS MET" if ok else "SOME TARGETS MISSED (see above)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
