"""A clean clip against controlled degradations of it: the matching metric moves the right way
and the matching composite drops."""

from __future__ import annotations

import json

import numpy as np
import pytest

from videometrics import METRICS_VERSION, analyze_video
from videometrics.synthetic import encode_frames, synthetic_frames

# Small clips of their own for the grain and codec checks.
WIDTH, HEIGHT, FPS = 320, 192, 24
TEXTS = ("Solar power saves money", "Panels last decades")

REQUIRED_KEYS = {
    "frames",
    "fps",
    "duration_s",
    "width",
    "height",
    "sharpness",
    "noise_sigma",
    "blockiness",
    "quantizer",
    "colorfulness",
    "exposure_clipped",
    "flicker",
    "temporal_flickering",
    "temporal_ssim",
    "warp_error",
    "motion",
    "text_cer",
    "visual_quality",
    "temporal_coherence",
    "factual_accuracy",
    "decode_seconds",
    "compute_seconds",
}
COMPOSITES = ("visual_quality", "temporal_coherence", "factual_accuracy")


def test_clean_clip_has_every_key_sane_values_and_high_composites(clips) -> None:
    m = clips.metrics("clean")
    assert m.keys() >= REQUIRED_KEYS
    json.dumps(m)  # JSON-serialisable as is
    assert m["metrics_version"] == METRICS_VERSION
    assert (m["frames"], m["width"], m["height"]) == (60, 320, 192)
    assert m["fps"] == pytest.approx(24.0)
    assert m["duration_s"] == pytest.approx(2.5, abs=0.05)
    assert m["text_cer"] is None and m["factual_accuracy"] is None  # no script given
    assert m["visual_quality"] > 0.8
    assert m["temporal_coherence"] > 0.95
    assert m["jitter"] == 0.0 and m["repeated_frames"] == 0 and m["scene_cuts"] == 0
    assert m["flicker"] == 0.0
    assert 0.0 < m["temporal_ssim"] <= 1.0 and 0.0 < m["temporal_flickering"] <= 1.0
    assert m["motion"] > 0.5  # the texture pans 1 px/frame, the shapes move
    assert m["exposure_clipped"] < 0.01
    assert m["colorfulness"] > 20.0
    assert m["noise_sigma"] < 2.5
    for key in COMPOSITES[:2]:
        assert 0.0 <= m[key] <= 1.0


# --- spatial: blur, noise and compression are told apart ---------------------------------------


def test_blur_lowers_sharpness_and_visual_quality(clips) -> None:
    clean, blur = clips.metrics("clean"), clips.metrics("blur")
    assert blur["sharpness"] < 0.1 * clean["sharpness"]
    assert blur["visual_quality"] < clean["visual_quality"] - 0.2


def test_blur_does_not_read_as_noise_or_blocking(clips) -> None:
    clean, blur = clips.metrics("clean"), clips.metrics("blur")
    assert blur["noise_sigma"] <= clean["noise_sigma"] + 0.2
    assert blur["blockiness"] <= clean["blockiness"] + 0.15


def test_noise_raises_noise_sigma_and_lowers_visual_quality(clips) -> None:
    clean, noisy = clips.metrics("clean"), clips.metrics("noise")
    assert noisy["noise_sigma"] > clean["noise_sigma"] + 2.0
    assert noisy["visual_quality"] < clean["visual_quality"] - 0.05


def test_noise_does_not_raise_sharpness(clips) -> None:
    # Uncompensated, the Laplacian variance of this clip more than doubles with σ 10 noise.
    clean, noisy = clips.metrics("clean"), clips.metrics("noise")
    assert noisy["sharpness"] < 1.25 * clean["sharpness"]


def test_heavy_compression_raises_blockiness_and_lowers_visual_quality(clips) -> None:
    clean, crushed = clips.metrics("clean"), clips.metrics("compressed")
    assert crushed["blockiness"] > clean["blockiness"] + 0.3
    assert crushed["sharpness"] < clean["sharpness"]
    assert crushed["visual_quality"] < clean["visual_quality"] - 0.15


def test_visual_quality_falls_step_by_step_with_compression(clips) -> None:
    clean, mid, crushed = (clips.metrics(n) for n in ("clean", "crf_33", "compressed"))
    assert clean["visual_quality"] > mid["visual_quality"] > crushed["visual_quality"]


def test_compression_removing_detail_does_not_read_as_better_quality(clips) -> None:
    # CRF 51 smooths away texture that a plain Immerkær estimate reads as noise; that must not
    # make the video look "cleaner" to visual_quality.
    clean, crushed = clips.metrics("clean"), clips.metrics("compressed")
    assert crushed["visual_quality"] < clean["visual_quality"]


def test_quantizer_reads_the_encoders_qp_and_rises_with_crf(clips) -> None:
    clean, mid, crushed = (clips.metrics(n) for n in ("clean", "crf_33", "compressed"))
    # x264's CRF mode picks QPs near the CRF (lower for I frames, higher for B frames).
    assert 12.0 < clean["quantizer"] < 26.0  # encoded at CRF 20
    assert clean["quantizer"] + 8 < mid["quantizer"] < crushed["quantizer"]
    assert crushed["quantizer"] == pytest.approx(51.0, abs=1.0)


def test_grain_wiped_out_by_compression_does_not_read_as_cleaner(tmp_path) -> None:
    # A no-reference noise measure sees the grain vanish as CRF rises and would call the clip
    # cleaner; the QP the encoder used says what was thrown away.
    rng = np.random.default_rng(3)
    base = synthetic_frames(WIDTH, HEIGHT, FPS, 1.5, TEXTS)
    grainy = [np.clip(f + rng.normal(0, 14, f.shape), 0, 255).astype(np.uint8) for f in base]
    scores = [
        analyze_video(encode_frames(grainy, tmp_path / f"g{crf}.mp4", FPS, crf=crf), ocr=False)
        for crf in (18, 28, 38)
    ]
    assert scores[0]["noise_sigma"] > scores[1]["noise_sigma"]  # the grain is wiped out ...
    vq = [m["visual_quality"] for m in scores]
    assert vq[0] > vq[1] > vq[2]  # ... and visual_quality still falls


def test_quantizer_is_left_out_for_codecs_without_h264_qp(tmp_path) -> None:
    frames = synthetic_frames(WIDTH, HEIGHT, FPS, 1.0, TEXTS)
    path = encode_frames(frames, tmp_path / "mpeg4.mp4", FPS, codec="mpeg4")
    m = analyze_video(path, ocr=False)
    assert m["quantizer"] is None
    assert 0.0 < m["visual_quality"] <= 1.0  # the other metrics still make the composite


def test_temporal_defects_leave_visual_quality_alone(clips) -> None:
    clean = clips.metrics("clean")
    for name in ("drop_3", "duplicates", "freeze", "judder", "flicker_6"):
        assert clips.metrics(name)["visual_quality"] == pytest.approx(
            clean["visual_quality"], abs=0.05
        ), name


# --- temporal: judder, held frames, freezes and flicker -----------------------------------------


def test_temporal_coherence_drops_when_frames_are_dropped(clips) -> None:
    clean, dropped = clips.metrics("clean"), clips.metrics("drop_3")
    assert dropped["jitter"] == pytest.approx(2 / 3, abs=0.1)  # 2 of every 3 frames held
    assert dropped["temporal_coherence"] < clean["temporal_coherence"] - 0.5


def test_a_slideshow_is_not_excused_as_scene_cuts(clips) -> None:
    # One frame in 12, each held: the jumps between held frames are periodic, not cuts.
    clean, slideshow, dropped = (clips.metrics(n) for n in ("clean", "slideshow", "drop_3"))
    assert slideshow["scene_cuts"] == 0
    assert slideshow["jitter"] > 0.8
    assert slideshow["temporal_coherence"] < dropped["temporal_coherence"]
    assert slideshow["temporal_coherence"] < clean["temporal_coherence"] - 0.7


def test_temporal_coherence_drops_with_repeated_frames(clips) -> None:
    clean, repeated = clips.metrics("clean"), clips.metrics("duplicates")
    assert repeated["repeated_frames"] == pytest.approx(6, abs=1)  # 10 % of 60 frames
    assert repeated["temporal_coherence"] < clean["temporal_coherence"] - 0.2


def test_a_freeze_is_counted_frame_by_frame(clips) -> None:
    clean, frozen = clips.metrics("clean"), clips.metrics("freeze")
    assert frozen["freezes"] == 1
    assert frozen["repeated_frames"] == pytest.approx(12, abs=1)
    assert frozen["scene_cuts"] == 0  # the catch-up jump after the freeze is not a cut
    assert frozen["temporal_coherence"] < clean["temporal_coherence"] - 0.3


def test_judder_from_an_uneven_cadence_lowers_temporal_coherence(clips) -> None:
    clean, juddery = clips.metrics("clean"), clips.metrics("judder")
    assert juddery["jitter"] == pytest.approx(0.2, abs=0.06)  # every fifth frame held
    assert juddery["temporal_coherence"] < clean["temporal_coherence"] - 0.2


def test_flicker_of_one_code_value_is_invisible(clips) -> None:
    clean, faint = clips.metrics("clean"), clips.metrics("flicker_1")
    assert faint["flicker"] == pytest.approx(0.0, abs=0.01)
    assert faint["temporal_coherence"] == pytest.approx(clean["temporal_coherence"], abs=0.02)


def test_visible_flicker_lowers_temporal_coherence(clips) -> None:
    clean, strong = clips.metrics("clean"), clips.metrics("flicker_6")
    assert strong["flicker"] > 0.5
    assert strong["jitter"] == 0.0  # brightness steps are not motion glitches
    assert strong["temporal_coherence"] < clean["temporal_coherence"] - 0.3


def test_brightness_pumping_raises_flicker_and_lowers_temporal_coherence(clips) -> None:
    clean, pumped = clips.metrics("clean"), clips.metrics("pump")
    assert pumped["flicker"] > 1.0
    assert pumped["temporal_coherence"] < clean["temporal_coherence"] - 0.3
    # Spatial quality is not what changed.
    assert pumped["sharpness"] == pytest.approx(clean["sharpness"], rel=0.15)


def test_shuffled_frames_break_temporal_coherence(clips) -> None:
    clean, shuffled = clips.metrics("clean"), clips.metrics("shuffle")
    assert shuffled["jitter"] > 0.2
    assert shuffled["temporal_coherence"] < clean["temporal_coherence"] - 0.3
    assert shuffled["visual_quality"] == pytest.approx(clean["visual_quality"], abs=0.05)


def test_a_single_swapped_frame_pair_is_caught(clips) -> None:
    clean, swapped = clips.metrics("clean"), clips.metrics("swap_one")
    assert swapped["jitter"] > 0.0
    assert swapped["temporal_coherence"] < clean["temporal_coherence"] - 0.03


def test_spatial_degradations_leave_temporal_coherence_alone(clips) -> None:
    clean = clips.metrics("clean")
    for name in ("blur", "noise", "crf_33"):
        assert clips.metrics(name)["temporal_coherence"] == pytest.approx(
            clean["temporal_coherence"], abs=0.05
        ), name


# --- text ---------------------------------------------------------------------------------------


def test_script_text_is_read_back_from_the_clean_clip(clips) -> None:
    m = clips.metrics("clean", ocr=True)
    assert m["text_cer"] is not None and m["text_cer"] <= 0.1
    assert m["factual_accuracy"] >= 0.9
    assert 1 <= m["ocr_frames"] <= 6  # three scenes, at most two samples each
    assert m["ocr_seconds"] > 0.0


def test_removed_text_gives_full_error_and_low_factual_accuracy(clips) -> None:
    clean, removed = clips.metrics("clean", ocr=True), clips.metrics("no_text", ocr=True)
    assert removed["text_cer"] >= 0.9
    assert removed["factual_accuracy"] < clean["factual_accuracy"] - 0.8


def test_garbled_text_raises_cer_and_lowers_factual_accuracy(clips) -> None:
    clean, garbled = clips.metrics("clean", ocr=True), clips.metrics("garbled", ocr=True)
    assert 0.2 < garbled["text_cer"] < 0.9
    assert garbled["factual_accuracy"] < clean["factual_accuracy"] - 0.2


def test_text_shown_as_two_lines_in_another_order_is_still_found(clips) -> None:
    # Captions 1 and 2 appear together, caption 2 on top, during both of their scenes.
    m = clips.metrics("two_lines", ocr=True)
    assert m["text_cer"] <= 0.1
    assert m["factual_accuracy"] >= 0.9


def test_ocr_off_leaves_text_metrics_null(clips) -> None:
    from videometrics import analyze_video

    m = analyze_video(clips.path("clean"), script=clips.script, ocr=False)
    assert m["text_cer"] is None and m["factual_accuracy"] is None


def test_a_script_without_any_text_is_not_ocrd(clips) -> None:
    from videometrics import analyze_video

    m = analyze_video(clips.path("clean"), script=["", "  "])
    assert m["text_cer"] is None and m["ocr_frames"] is None
