"""A clean clip against controlled degradations of it: the matching metric moves the right way
and the matching composite drops."""

from __future__ import annotations

import json

import pytest

from videometrics import METRICS_VERSION

REQUIRED_KEYS = {
    "frames",
    "fps",
    "duration_s",
    "width",
    "height",
    "sharpness",
    "noise_sigma",
    "blockiness",
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
    assert m["temporal_coherence"] > 0.85
    assert m["jitter"] == 0.0
    assert 0.0 < m["temporal_ssim"] <= 1.0 and 0.0 < m["temporal_flickering"] <= 1.0
    assert m["motion"] > 0.5  # the texture pans 1 px/frame, the shapes move
    assert m["exposure_clipped"] < 0.01
    assert m["colorfulness"] > 20.0
    for key in COMPOSITES[:2]:
        assert 0.0 <= m[key] <= 1.0


def test_blur_lowers_sharpness_and_visual_quality(clips) -> None:
    clean, blur = clips.metrics("clean"), clips.metrics("blur")
    assert blur["sharpness"] < 0.1 * clean["sharpness"]
    assert blur["visual_quality"] < clean["visual_quality"] - 0.2


def test_noise_raises_noise_sigma_and_lowers_visual_quality(clips) -> None:
    clean, noisy = clips.metrics("clean"), clips.metrics("noise")
    assert noisy["noise_sigma"] > 1.8 * clean["noise_sigma"]
    assert noisy["visual_quality"] < clean["visual_quality"] - 0.03


def test_heavy_compression_raises_blockiness_and_lowers_visual_quality(clips) -> None:
    clean, crushed = clips.metrics("clean"), clips.metrics("compressed")
    assert crushed["blockiness"] > clean["blockiness"] + 0.2
    assert crushed["sharpness"] < clean["sharpness"]
    assert crushed["visual_quality"] < clean["visual_quality"] - 0.15


def test_brightness_pumping_raises_flicker_and_lowers_temporal_coherence(clips) -> None:
    clean, pumped = clips.metrics("clean"), clips.metrics("pump")
    assert pumped["flicker"] > 10 * clean["flicker"]
    assert pumped["flicker"] > 3.0
    assert pumped["temporal_flickering"] < clean["temporal_flickering"]
    assert pumped["warp_error"] > clean["warp_error"]
    assert pumped["temporal_coherence"] < clean["temporal_coherence"] - 0.3
    # Spatial quality is not what changed.
    assert pumped["sharpness"] == pytest.approx(clean["sharpness"], rel=0.15)


def test_shuffled_frames_break_temporal_metrics(clips) -> None:
    clean, shuffled = clips.metrics("clean"), clips.metrics("shuffle")
    assert shuffled["jitter"] > 0.2
    assert shuffled["temporal_ssim"] < clean["temporal_ssim"]
    assert shuffled["temporal_flickering"] < clean["temporal_flickering"]
    assert shuffled["warp_error"] > clean["warp_error"]
    assert shuffled["temporal_coherence"] < clean["temporal_coherence"] - 0.3
    assert shuffled["visual_quality"] == pytest.approx(clean["visual_quality"], abs=0.05)


def test_a_single_swapped_frame_pair_is_caught(clips) -> None:
    clean, swapped = clips.metrics("clean"), clips.metrics("swap_one")
    assert swapped["jitter"] > 0.0
    assert swapped["temporal_coherence"] < clean["temporal_coherence"] - 0.03


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


def test_ocr_off_leaves_text_metrics_null(clips) -> None:
    from videometrics import analyze_video

    m = analyze_video(clips.path("clean"), script=clips.script, ocr=False)
    assert m["text_cer"] is None and m["factual_accuracy"] is None


def test_a_script_without_any_text_is_not_ocrd(clips) -> None:
    from videometrics import analyze_video

    m = analyze_video(clips.path("clean"), script=["", "  "])
    assert m["text_cer"] is None and m["ocr_frames"] is None
