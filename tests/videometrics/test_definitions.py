"""Each metric's definition checked on inputs whose right answer is known."""

from __future__ import annotations

import math

import av
import cv2
import numpy as np
import pytest

from videometrics.cadence import analyse_cadence
from videometrics.composites import ScoreMap, factual_accuracy, temporal_coherence
from videometrics.decoding import VideoReader
from videometrics.flicker import THRESHOLD, flicker_overshoot, visible_flicker
from videometrics.scaling import Ladder
from videometrics.spatial import (
    blockiness,
    clipped_fraction,
    colorfulness,
    colorfulness_rgb,
    immerkaer_sigma,
    laplacian_variance,
    noise_sigma,
    sharpness,
)
from videometrics.synthetic import encode_frames, synthetic_frames
from videometrics.temporal import FlowMeter, local_changes, mean_abs_diff, motion_mad, ssim
from videometrics.text_match import missing_characters, normalize_text, substring_distance

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
def test_noise_sigma_recovers_added_gaussian_noise(sigma: float) -> None:
    flat = np.full((360, 640), 128.0)
    noisy = np.clip(flat + RNG.normal(0, sigma, flat.shape), 0, 255).astype(np.uint8)
    assert noise_sigma(noisy) == pytest.approx(sigma, rel=0.1)
    assert immerkaer_sigma(noisy) == pytest.approx(sigma, rel=0.1)


def test_noise_sigma_ignores_texture_that_immerkaer_alone_reads_as_noise() -> None:
    # Fine texture on the right half, flat shading on the left, σ 2 noise everywhere.
    img = np.full((360, 640), 110.0)
    img[:, 320:] += smooth_image(360, 320, seed=3, blur=0.8, contrast=25.0).astype(float) - 128
    noisy = np.clip(img + RNG.normal(0, 2.0, img.shape), 0, 255).astype(np.uint8)
    assert immerkaer_sigma(noisy) > 3.0  # the texture inflates the whole-image estimate
    assert noise_sigma(noisy) == pytest.approx(2.0, rel=0.15)


def test_sharpness_takes_the_noise_contribution_out() -> None:
    img = smooth_image(360, 640, blur=1.5)
    noisy = np.clip(img + RNG.normal(0, 8.0, img.shape), 0, 255).astype(np.uint8)
    assert laplacian_variance(noisy) > 3 * laplacian_variance(img)  # raw: noise reads as detail
    assert sharpness(noisy, noise_sigma(noisy)) == pytest.approx(
        sharpness(img, noise_sigma(img)), rel=0.25
    )


def test_blockiness_is_zero_without_blocks_and_rises_with_them() -> None:
    img = smooth_image(192, 320, blur=6.0, contrast=15.0)  # gentle shading, where blocks show
    assert blockiness(img) == pytest.approx(0.0, abs=0.1)
    offsets = RNG.integers(-6, 7, (192 // 8, 320 // 8)).astype(np.float32)
    blocky = np.clip(img + np.kron(offsets, np.ones((8, 8))), 0, 255).astype(np.uint8)
    assert blockiness(blocky) > 1.0
    # The same offsets shifted off the 8×8 grid are not coding blocks.
    shifted = np.roll(blocky, (4, 4), axis=(0, 1))
    assert blockiness(shifted) < 0.1


def test_noise_alone_does_not_read_as_blocking() -> None:
    img = smooth_image(192, 320, blur=6.0, contrast=15.0)
    noisy = np.clip(img + RNG.normal(0, 6.0, img.shape), 0, 255).astype(np.uint8)
    assert blockiness(noisy) == pytest.approx(0.0, abs=0.15)


def test_blockiness_ignores_a_content_edge_on_the_grid() -> None:
    img = smooth_image(192, 320, blur=6.0, contrast=15.0)
    img[:, 160:] = np.clip(img[:, 160:].astype(int) + 60, 0, 255)  # one strong edge at x = 159|160
    assert blockiness(img) == pytest.approx(0.0, abs=0.1)


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


def _cadence(mads: list[float]):
    return analyse_cadence(np.asarray(mads, float), fps=24.0)


def test_cadence_excuses_an_isolated_cut_but_flags_a_swapped_frame() -> None:
    steady = [3.0] * 30
    assert _cadence(steady).glitches == 0 and _cadence(steady).jitter == 0.0
    cut = _cadence(steady[:15] + [40.0] + steady[15:])
    assert (cut.cuts, cut.glitches, cut.jitter) == (1, 0, 0.0)
    # Frames t and t+1 swapped in steady motion: MAD goes m, 2m, m, 2m, m.
    swapped = _cadence(steady[:15] + [6.0, 3.0, 6.0] + steady[15:])
    assert swapped.cuts == 0 and swapped.glitches == 2


def test_cadence_counts_held_frames_and_their_catch_up_is_no_cut() -> None:
    steady = [3.0] * 30
    frozen = _cadence(steady[:10] + [0.0] * 6 + [40.0] + steady[10:])
    assert frozen.held == pytest.approx(6) and frozen.freezes == 1
    assert frozen.cuts == 0
    repeat = _cadence(steady[:10] + [0.0, 6.0] + steady[10:])
    assert repeat.held == pytest.approx(1) and repeat.freezes == 0


def test_periodic_jumps_between_held_frames_are_not_scene_cuts() -> None:
    slideshow = _cadence(([0.0] * 11 + [30.0]) * 5)
    assert slideshow.cuts == 0
    assert slideshow.jitter > 0.85


def test_long_stills_are_deliberate_and_short_ones_are_held() -> None:
    moving = [2.0] * 12
    title_card = _cadence([0.0] * 60 + [40.0] + moving)  # a still title, then a cut
    assert title_card.held == 0 and title_card.jitter == 0.0
    pause = _cadence(moving + [0.0] * 48 + moving)  # two seconds without change
    assert pause.held == 0


def test_held_frames_in_barely_moving_content_do_not_count() -> None:
    # 0.2 code values of change per frame is a very slow drift: a held frame there is invisible.
    slow = _cadence([0.2] * 15 + [0.0] + [0.2] * 15)
    assert slow.held == 0


def test_a_step_in_motion_level_is_not_a_glitch() -> None:
    regime = _cadence([0.3] * 12 + [2.5] * 12 + [0.3] * 12)
    assert regime.glitches == 0 and regime.held == 0 and regime.cuts == 0


def test_a_caption_swap_is_local_new_content_but_a_skip_is_not() -> None:
    moving = np.full(16, 3, np.uint8)  # every region moves by about 3 code values a frame
    caption = moving.copy()
    caption[13:15] = 40  # two bottom regions change abruptly
    skipped = np.full(16, 6, np.uint8)  # a skipped frame: twice the change everywhere
    assert local_changes(np.stack([moving, caption])).tolist() == [False, True]
    assert local_changes(np.stack([moving, skipped])).tolist() == [False, False]
    series = _cadence([3.0] * 15 + [6.0] + [3.0] * 15)
    assert series.glitches == 1  # without region information the spike is a skip
    local = np.zeros(31, bool)
    local[15] = True
    with_regions = analyse_cadence(np.array([3.0] * 15 + [6.0] + [3.0] * 15), 24.0, local=local)
    assert with_regions.glitches == 0 and with_regions.cuts == 1


def test_motion_mad_ignores_a_global_brightness_step() -> None:
    img = smooth_image()
    brighter = cv2.add(img, 5)
    assert mean_abs_diff(img, brighter) == pytest.approx(5.0, abs=0.1)
    assert motion_mad(img, brighter, float(brighter.mean() - img.mean())) < 0.1


def test_flicker_overshoot_ignores_ramps_and_counts_frame_jitter() -> None:
    ramp = np.linspace(100, 160, 30)  # a fade: monotone, never overshoots
    no_cut = np.zeros(29, bool)
    assert np.nanmax(flicker_overshoot(ramp, no_cut)) == pytest.approx(0.0)
    jitter = np.full(30, 100.0)
    jitter[10] = 106.0
    assert np.nanmax(flicker_overshoot(jitter, no_cut)) == pytest.approx(6.0)
    assert visible_flicker(jitter, no_cut) == pytest.approx((6.0 - THRESHOLD) / 30 * 1.0, rel=0.3)


def test_flicker_has_a_dead_zone_below_visibility() -> None:
    one_level = 100.0 + (np.arange(40) % 2)  # alternating 100, 101: a 1-level change
    assert visible_flicker(one_level, np.zeros(39, bool)) == 0.0


def test_flicker_skips_windows_across_a_cut() -> None:
    mu = np.array([50.0] * 10 + [150.0] * 10)
    cut = np.zeros(19, bool)
    cut[9] = True
    assert visible_flicker(mu, cut) == 0.0


def test_text_normalisation_drops_case_whitespace_and_width() -> None:
    assert normalize_text("  Hello,\n  World ") == "hello,world"
    assert normalize_text("ＡＢＣ，") == "abc,"  # full-width forms from the recogniser


def test_substring_distance_is_a_semi_global_levenshtein() -> None:
    assert substring_distance("solar", "xxsolarxx") == 0
    assert substring_distance("solar", "xxsloarxx") == 2
    assert substring_distance("solar", "") == 5
    assert substring_distance("abcd", "zzabxdzz") == 1


def test_intended_text_is_found_in_any_order_and_grouping() -> None:
    ref = "Solar power saves money"
    assert missing_characters(ref, ["saves money", "x", "SOLAR POWER"]) == (0, 20)
    assert missing_characters(ref, ["Panels last decades Solarpowersavesmoney"]) == (0, 20)
    assert missing_characters(ref, [""]) == (20, 20)
    garbled, n = missing_characters(ref, ["Sloar pwoer svaes mnoey"])
    assert 0.2 < garbled / n < 0.6


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
    worst = temporal_coherence({"flicker": 100.0, "jitter": 1.0})
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
            chroma = f.chroma()
            assert chroma is not None and chroma[0].shape == (48, 165)
    assert math.isfinite(laplacian_variance(f.y))


def test_quantizer_reads_every_macroblocks_qp_from_the_side_data(tmp_path) -> None:
    import av

    from videometrics.quantizer import DECODER_OPTIONS, frame_qp
    from videometrics.synthetic import encode_frames, synthetic_frames

    # x264's adaptive quantisation gives macroblocks their own offsets from the frame's QP.
    path = encode_frames(synthetic_frames(320, 192, 24, 0.5), tmp_path / "aq.mp4", 24, crf=30)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = dict(DECODER_OPTIONS)
        for frame in container.decode(stream):
            params = frame.side_data.get(av.sidedata.sidedata.Type.VIDEO_ENC_PARAMS)
            assert frame_qp(frame) == pytest.approx(float(params.qp_map().mean()))


def test_reading_the_qp_leaves_no_cycle_that_keeps_decoded_frames_alive(tmp_path) -> None:
    # `frame.side_data` caches a container on the frame that points back at it: such frames are
    # freed only by the garbage collector (115 MB more peak memory at 720p).
    import gc

    import av
    from av.sidedata.sidedata import SideData, SideDataContainer

    from videometrics.quantizer import DECODER_OPTIONS, frame_qp
    from videometrics.synthetic import encode_frames, synthetic_frames

    path = encode_frames(synthetic_frames(320, 192, 24, 0.2), tmp_path / "q.mp4", 24)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.options = dict(DECODER_OPTIONS)
        frame = next(container.decode(stream))
        assert frame_qp(frame) is not None
        holders = [
            r for r in gc.get_referrers(frame) if isinstance(r, SideData | SideDataContainer)
        ]
        assert holders == []
        assert frame.side_data is not None  # PyAV's cached property: the check can fail
        assert [r for r in gc.get_referrers(frame) if isinstance(r, SideDataContainer)]
