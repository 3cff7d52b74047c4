"""Each metric's definition checked on inputs whose right answer is known."""

from __future__ import annotations

import math

import av
import cv2
import numpy as np
import pytest

from videometrics.composites import ScoreMap, factual_accuracy, temporal_coherence
from videometrics.decoding import VideoReader
from videometrics.ocr import cer, char_errors, normalize_text
from videometrics.scaling import Ladder
from videometrics.spatial import (
    blockiness,
    clipped_fraction,
    colorfulness,
    colorfulness_rgb,
    immerkaer_sigma,
    laplacian_variance,
)
from videometrics.synthetic import encode_frames, synthetic_frames
from videometrics.temporal import FlowMeter, PairSample, TemporalSeries, mean_abs_diff, ssim

RNG = np.random.default_rng(11)


def smooth_image(
    h: int = 180, w: int = 320, seed: int = 0, blur: float = 3.0, contrast: float = 40.0
) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 1, (h, w)).astype(np.float32)
    img = cv2.GaussianBlur(noise, (0, 0), blur)
    img = 128 + contrast * img / img.std()
    return np.clip(img, 0, 255).astype(np.uint8)


def test_laplacian_variance_matches_direct_formula() -> None:
    img = smooth_image()
    f = img.astype(np.float64)
    lap = f[:-2, 1:-1] + f[2:, 1:-1] + f[1:-1, :-2] + f[1:-1, 2:] - 4 * f[1:-1, 1:-1]
    # Border pixels (reflected) barely move the variance of a 320×180 image.
    assert laplacian_variance(img) == pytest.approx(lap.var(), rel=0.05)
    assert laplacian_variance(cv2.GaussianBlur(img, (0, 0), 2.0)) < 0.5 * laplacian_variance(img)


@pytest.mark.parametrize("sigma", [2.0, 5.0, 10.0])
def test_immerkaer_recovers_added_gaussian_noise(sigma: float) -> None:
    flat = np.full((360, 640), 128.0)
    noisy = np.clip(flat + RNG.normal(0, sigma, flat.shape), 0, 255).astype(np.uint8)
    assert immerkaer_sigma(noisy) == pytest.approx(sigma, rel=0.1)


def test_immerkaer_measures_native_pixels_on_a_centred_crop() -> None:
    flat = np.full((720, 1280), 100.0)
    noisy = np.clip(flat + RNG.normal(0, 4.0, flat.shape), 0, 255).astype(np.uint8)
    assert immerkaer_sigma(noisy) == pytest.approx(4.0, rel=0.1)


def test_blockiness_is_one_without_blocks_and_rises_with_them() -> None:
    img = smooth_image(192, 320, blur=6.0, contrast=15.0)  # gentle shading, where blocks show
    assert blockiness(img) == pytest.approx(1.0, abs=0.08)
    offsets = RNG.integers(-6, 7, (192 // 8, 320 // 8)).astype(np.float32)
    blocky = np.clip(img + np.kron(offsets, np.ones((8, 8))), 0, 255).astype(np.uint8)
    assert blockiness(blocky) > 1.5
    # The same offsets shifted off the 8×8 grid are not coding blocks.
    shifted = np.roll(blocky, (4, 4), axis=(0, 1))
    assert blockiness(shifted) < blockiness(blocky)


def test_clipped_fraction_counts_both_ends_for_each_range() -> None:
    img = np.full((10, 10), 128, np.uint8)
    img[0, :] = 16  # limited-range black
    img[1, :5] = 235  # limited-range white
    assert clipped_fraction(img, full_range=False) == pytest.approx(0.15)
    assert clipped_fraction(img, full_range=True) == 0.0
    img[2, :] = 0
    assert clipped_fraction(img, full_range=True) == pytest.approx(0.10)


def test_colorfulness_from_chroma_matches_rgb_reference() -> None:
    rgb = np.zeros((192, 320, 3), np.uint8)
    rgb[..., 0] = np.linspace(30, 220, 320)[None, :]
    rgb[..., 1] = np.linspace(200, 60, 192)[:, None]
    rgb[..., 2] = 90
    cv2.circle(rgb, (160, 96), 50, (240, 40, 40), -1)
    frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
    u = frame.to_ndarray()[192 : 192 + 48].reshape(96, 160)
    v = frame.to_ndarray()[192 + 48 :].reshape(96, 160)
    from_chroma = colorfulness(u, v, full_range=False, bt709=False)
    assert from_chroma == pytest.approx(colorfulness_rgb(rgb), rel=0.05)
    gray = np.full((96, 160), 128, np.uint8)
    assert colorfulness(gray, gray, full_range=False, bt709=False) == pytest.approx(0, abs=1e-3)


def test_ssim_is_one_for_identical_frames_and_falls_with_change() -> None:
    img = smooth_image()
    assert ssim(img, img) == pytest.approx(1.0, abs=1e-6)
    noisy = np.clip(img + RNG.normal(0, 15, img.shape), 0, 255).astype(np.uint8)
    assert ssim(img, noisy) < 0.8
    assert mean_abs_diff(img, img) == 0.0


def test_flow_recovers_a_known_shift_and_warps_it_away() -> None:
    big = smooth_image(200, 360, seed=4)
    prev = np.ascontiguousarray(big[10:190, 10:330])
    cur = np.ascontiguousarray(big[10:190, 8:328])  # content moves 2 px to the right
    meter = FlowMeter()
    moved = meter.measure(prev, cur)
    assert moved.motion == pytest.approx(2.0, abs=0.4)
    assert moved.valid_fraction > 0.8
    unrelated = meter.measure(prev, smooth_image(seed=9))
    assert moved.warp_error < 0.2 * unrelated.warp_error


def _series(mads: list[float]) -> TemporalSeries:
    series = TemporalSeries()
    for m in mads:
        series.add(PairSample(mad=m, mean_delta=0.0))
    series.finish()
    return series


def test_series_excuses_an_isolated_cut_but_flags_a_swapped_frame() -> None:
    steady = [3.0] * 30
    assert _series(steady).glitches == 0
    cut = steady[:15] + [40.0] + steady[15:]
    s = _series(cut)
    assert (s.cuts, s.glitches) == (1, 0)
    # Frames t and t+1 swapped in steady motion: MAD goes m, 2m, m, 2m, m.
    swapped = steady[:15] + [6.0, 3.0, 6.0] + steady[15:]
    s = _series(swapped)
    assert s.cuts == 0 and s.glitches == 2
    frozen = steady[:15] + [0.0] + steady[15:]
    assert _series(frozen).glitches == 1


def test_series_counts_brightness_jumps_as_flicker_not_cuts() -> None:
    series = TemporalSeries()
    for i in range(30):
        jump = 20.0 if i == 15 else 0.0
        series.add(PairSample(mad=3.0 + jump, mean_delta=jump))
    series.finish()
    assert series.cuts == 0
    assert series.results(1.0)["flicker"] == pytest.approx(20.0 / 30.0)


def test_cer_normalises_case_whitespace_and_width() -> None:
    assert normalize_text("  Hello,\n  World ") == "hello,world"
    assert cer("Hello World", "hello   world") == 0.0
    assert cer("Hello World", "HelloWorld") == 0.0  # OCR often drops spaces
    assert normalize_text("ＡＢＣ，") == "abc,"  # full-width forms from the recogniser
    assert char_errors("abcd", "abxd") == (1, 4)
    assert cer("abcd", "") == 1.0
    assert cer("", "anything") is None


def test_score_maps_are_monotone_and_composites_bounded() -> None:
    falling = ScoreMap("x", 2.0, 2.0, False)
    rising = ScoreMap("x", 2.0, 2.0, True)
    xs = [0.0, 0.5, 1.0, 2.0, 4.0, 100.0]
    assert all(a >= b for a, b in zip(map(falling, xs), map(falling, xs[1:]), strict=False))
    assert all(a <= b for a, b in zip(map(rising, xs), map(rising, xs[1:]), strict=False))
    assert falling(2.0) == pytest.approx(0.5) == rising(2.0)
    assert factual_accuracy(None) is None
    assert factual_accuracy(0.25) == pytest.approx(0.75)
    assert factual_accuracy(3.0) == 0.0
    assert temporal_coherence({}) is None
    worst = temporal_coherence(
        {"warp_error": 1.0, "flicker": 100.0, "jitter": 1.0, "temporal_ssim": 0.0}
    )
    assert worst is not None and 0.0 <= worst < 0.01


def test_ladder_sizes() -> None:
    assert Ladder.for_size(1280, 720).analysis_size == (640, 360)
    assert Ladder.for_size(1280, 720).temporal_size == (320, 180)
    assert Ladder.for_size(1920, 1080).analysis_size == (640, 360)
    assert Ladder.for_size(720, 1280).temporal_size == (180, 320)
    small = Ladder.for_size(320, 192)  # below 360: analysed natively; temporal level at 180
    assert small.analysis_steps == () and small.temporal_size == (300, 180)
    tiny = Ladder.for_size(160, 96)  # never upscaled
    assert tiny.analysis_size == tiny.temporal_size == (160, 96)


def test_luma_is_read_from_the_y_plane_honouring_the_stride(tmp_path) -> None:
    # 330 px is not a multiple of the decoder's row alignment, so line_size > width.
    path = encode_frames(synthetic_frames(330, 96, 24, 0.25), tmp_path / "odd.mp4", 24)
    with VideoReader(path) as reader:
        for f in reader.frames():
            assert f.frame.planes[0].line_size > 330
            expected = f.frame.to_ndarray(format="yuv420p")[:96]
            np.testing.assert_array_equal(f.y, expected)
            assert f.u is not None and f.u.shape == (48, 165)
    assert math.isfinite(laplacian_variance(f.y))
