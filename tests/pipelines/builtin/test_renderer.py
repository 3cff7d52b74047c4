"""Behaviour of the built-in procedural renderer (pipelines/builtin: renderer and scripting).

Pure tests: no database, no Django settings. Clips are tiny (192x108, 12-24 fps, 1 s scenes) so
the whole file runs in seconds; each parameter test compares two renders that differ in exactly
that parameter and checks the measurable effect the improver relies on.
"""

from __future__ import annotations

import itertools
import json
import struct
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PIL import Image

import pipelines.builtin.renderer as renderer
from pipelines.builtin.declaration import DEFAULT_PARAMS
from pipelines.builtin.renderer import RenderResult, build_script, iter_frames, render_video
from pipelines.declarations import InvalidParams

PROMPT = "Make a short video about how solar panels convert sunlight into electricity for homes"
# Small, fast and grain-free unless a test is about grain, so differences come from the knob.
SMALL = {"width": 192, "height": 108, "fps": 12, "seconds_per_scene": 1.0, "grain": 0.0}


def frames(prompt: str = PROMPT, **overrides: object) -> list[np.ndarray]:
    return list(iter_frames(prompt, {**SMALL, **overrides}))


def gray(frame: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)


def laplacian_var(frame: np.ndarray) -> float:
    return float(cv2.Laplacian(gray(frame), cv2.CV_64F).var())


def highpass_std(frame: np.ndarray) -> float:
    g = gray(frame).astype(np.float32)
    return float((g - cv2.GaussianBlur(g, (0, 0), 2.0)).std())


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def mid_frame(clip: list[np.ndarray], scene: int, fps: int, seconds: float) -> np.ndarray:
    return clip[int((scene + 0.5) * seconds * fps)]


def top_level_boxes(path: Path) -> list[tuple[str, int]]:
    data = path.read_bytes()
    boxes, offset = [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        boxes.append((kind.decode("latin-1"), offset))
        if size == 0:
            break
        offset += size
    return boxes


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def render(tmp_path: Path, name: str = "out", prompt: str = PROMPT, **overrides: object):
    return render_video(
        prompt=prompt,
        params={**SMALL, **overrides},
        output_path=tmp_path / f"{name}.mp4",
        poster_path=tmp_path / f"{name}.jpg",
    )


# --- script ----------------------------------------------------------------------------------


def test_script_is_deterministic_and_ascii() -> None:
    prompt = "Café résumé: “smart” quotes — 日本語 and naïve façades in 2024"
    first, second = build_script(prompt, seed=3), build_script(prompt, seed=3)
    assert first == second
    assert first.scenes[0].kind == "title" and first.scenes[0].text == first.title
    assert all(s.kind == "point" for s in first.scenes[1:])
    assert 4 <= len(first.scenes) <= 6
    for line in first.lines():
        assert line and line.isascii() and line.isprintable()
        assert len(line) <= 40
    assert "Cafe" in first.title


def test_script_scenes_are_contiguous_and_follow_seconds_per_scene() -> None:
    script = build_script(PROMPT, seconds_per_scene=1.5)
    assert script.scenes[0].start_s == 0.0
    for before, after in itertools.pairwise(script.scenes):
        assert before.end_s == after.start_s
        assert after.end_s - after.start_s == pytest.approx(1.5)
    assert script.duration_s == pytest.approx(1.5 * len(script.scenes))


def test_script_point_count_follows_prompt_richness() -> None:
    assert len(build_script("dogs").scenes) == 1 + 3
    rich = "Cover solar cost, installation time, grid feed-in, battery storage and maintenance"
    assert len(build_script(rich).scenes) == 1 + 5


def test_script_title_drops_request_wording() -> None:
    assert build_script("Please create a short video about the history of jazz").title == (
        "History of Jazz"
    )


def test_seed_only_changes_point_wording_not_title_or_count() -> None:
    a, b = build_script(PROMPT, seed=0), build_script(PROMPT, seed=1)
    assert a.title == b.title and len(a.scenes) == len(b.scenes)
    assert a.lines() != b.lines()


def test_script_to_dict_is_json_serialisable() -> None:
    script = build_script(PROMPT)
    data = json.loads(json.dumps(script.to_dict()))
    assert data["title"] == script.title
    assert [s["text"] for s in data["scenes"]] == script.lines()
    assert {"text", "kind", "start_s", "end_s"} <= set(data["scenes"][0])


@pytest.mark.parametrize("prompt", ["", "   \n\t"])
def test_empty_prompt_raises_value_error(prompt: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_script(prompt)
    with pytest.raises(ValueError):
        iter_frames(prompt, SMALL)
    with pytest.raises(ValueError):
        render(tmp_path, prompt=prompt)
    assert list(tmp_path.iterdir()) == []


# --- frames ----------------------------------------------------------------------------------


def test_same_prompt_params_and_seed_give_identical_frames() -> None:
    a = frames(grain=0.05, seed=7, camera_speed=1.5)
    b = frames(grain=0.05, seed=7, camera_speed=1.5)
    assert len(a) == len(b)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_frame_geometry_follows_width_height_fps_and_seconds_per_scene() -> None:
    clip = frames(width=160, height=90, fps=10, seconds_per_scene=0.5)
    scenes = len(build_script(PROMPT).scenes)
    assert len(clip) == round(scenes * 0.5 * 10)
    assert all(f.shape == (90, 160, 3) and f.dtype == np.uint8 for f in clip)


def test_different_seed_changes_grain() -> None:
    # Seed also changes layout, so isolate the grain as (grainy - clean) for each seed.
    noise = {}
    for seed in (1, 2):
        grainy = frames(seed=seed, grain=0.1)[6].astype(np.int16)
        clean = frames(seed=seed, grain=0.0)[6].astype(np.int16)
        noise[seed] = grainy - clean
        assert noise[seed].std() == pytest.approx(0.1 * 255, rel=0.25)
    correlation = np.corrcoef(noise[1].ravel(), noise[2].ravel())[0, 1]
    assert abs(correlation) < 0.05


def test_grain_changes_from_frame_to_frame() -> None:
    a, b = frames(grain=0.1, camera_speed=0.0)[3:5]
    clean_a, clean_b = frames(grain=0.0, camera_speed=0.0)[3:5]
    na = a.astype(np.int16) - clean_a
    nb = b.astype(np.int16) - clean_b
    assert not np.array_equal(na, nb)


def test_grain_raises_noise() -> None:
    clean = frames(grain=0.0)[18]
    light = frames(grain=0.03)[18]
    heavy = frames(grain=0.15)[18]
    assert highpass_std(clean) < highpass_std(light) < highpass_std(heavy)


def test_denoise_reduces_noise_but_softens() -> None:
    noisy = frames(grain=0.1, denoise=0.0)[18]
    denoised = frames(grain=0.1, denoise=1.0)[18]
    assert highpass_std(denoised) < 0.6 * highpass_std(noisy)
    sharp_clean = frames(grain=0.0, denoise=0.0)[18]
    soft_clean = frames(grain=0.0, denoise=1.0)[18]
    assert laplacian_var(soft_clean) < laplacian_var(sharp_clean)


def test_sharpen_raises_laplacian_variance() -> None:
    plain = frames(sharpen=0.0)[18]
    sharpened = frames(sharpen=1.5)[18]
    assert laplacian_var(sharpened) > 1.3 * laplacian_var(plain)


def test_draft_variant_is_softer_than_hq() -> None:
    sharpness = {
        variant: laplacian_var(frames(model_variant=variant, width=320, height=180)[18])
        for variant in ("draft", "standard", "hq")
    }
    assert sharpness["draft"] < sharpness["standard"] < sharpness["hq"]


def test_transition_style_changes_boundary_frames() -> None:
    fps, seconds = 24, 1.0
    common = {"fps": fps, "seconds_per_scene": seconds, "camera_speed": 0.0}
    boundary = int(seconds * fps)  # first frame of scene 1
    window = slice(boundary - 8, boundary + 8)

    def biggest_jump(clip: list[np.ndarray]) -> float:
        part = clip[window]
        return max(mean_abs_diff(a, b) for a, b in itertools.pairwise(part))

    clips = {
        style: frames(transition_style=style, transition_seconds=0.5, **common)
        for style in ("cut", "crossfade", "fade_black", "wipe")
    }
    # Every style treats the boundary differently...
    at_boundary = {style: clip[boundary] for style, clip in clips.items()}
    for a, b in itertools.combinations(at_boundary, 2):
        assert not np.array_equal(at_boundary[a], at_boundary[b]), (a, b)
    # ...but away from it, all of them show the same scene.
    far = boundary + int(0.5 * fps)
    assert np.array_equal(clips["cut"][far], clips["crossfade"][far])
    # A cut jumps; blends spread the change over transition_seconds.
    assert biggest_jump(clips["cut"]) > 3 * biggest_jump(clips["crossfade"])
    assert at_boundary["fade_black"].mean() < 0.5 * clips["cut"][boundary - 8].mean()
    # Longer transitions mean smaller steps.
    short = frames(transition_style="crossfade", transition_seconds=0.1, **common)
    assert biggest_jump(short) > biggest_jump(clips["crossfade"])


def test_camera_speed_increases_frame_difference() -> None:
    fps = 24
    inside_scene = slice(int(1.25 * fps), int(1.75 * fps))  # middle of scene 1, no transition

    def motion(speed: float) -> float:
        clip = frames(fps=fps, camera_speed=speed)[inside_scene]
        return float(np.mean([mean_abs_diff(a, b) for a, b in itertools.pairwise(clip)]))

    still, slow, fast = motion(0.0), motion(0.5), motion(3.0)
    assert still < slow < fast
    assert fast > 2 * still


def _text_mask(strong: np.ndarray, weak: np.ndarray) -> np.ndarray:
    # Only the text colour depends on text_contrast, so the pixels that differ are the text.
    return np.abs(gray(strong).astype(np.int16) - gray(weak).astype(np.int16)) > 12


def test_text_contrast_changes_text_region_contrast() -> None:
    strong = frames(text_contrast=1.0)[18]
    weak = frames(text_contrast=0.15)[18]
    mask = _text_mask(strong, weak)
    assert mask.sum() > 50
    ys, xs = np.nonzero(mask)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))

    def spread(frame: np.ndarray) -> float:
        region = gray(frame)[box].astype(np.float32)
        return float(np.percentile(region, 95) - np.percentile(region, 5))

    assert spread(strong) > 2 * spread(weak)


def test_text_scale_changes_text_size() -> None:
    def text_pixels(scale: float) -> int:
        strong = frames(text_scale=scale, text_contrast=1.0)[18]
        weak = frames(text_scale=scale, text_contrast=0.1)[18]
        return int(_text_mask(strong, weak).sum())

    assert text_pixels(0.6) < text_pixels(1.0) < text_pixels(1.6)


def _squash(text: str) -> str:
    return "".join(text.lower().split())


def test_text_is_legible_to_ocr_at_default_params() -> None:
    rapidocr = pytest.importorskip("rapidocr_onnxruntime")
    params = dict(DEFAULT_PARAMS)
    script = build_script(PROMPT, params["seed"])
    fps, seconds = params["fps"], params["seconds_per_scene"]
    wanted = {0: None, 1: None}
    for index, frame in enumerate(itertools.islice(iter_frames(PROMPT, params), 2 * 48)):
        for scene in wanted:
            if index == int((scene + 0.5) * seconds * fps):
                wanted[scene] = frame
    engine = rapidocr.RapidOCR()
    for scene, frame in wanted.items():
        result, _ = engine(frame)
        read = " ".join(text for _, text, _ in result or [])
        expected = script.scenes[scene].text
        # OCR sometimes drops a space between words; compare without whitespace.
        assert _squash(expected) in _squash(read), (expected, read)


# --- encoding --------------------------------------------------------------------------------


def test_output_is_h264_yuv420p_mp4_with_faststart(tmp_path: Path) -> None:
    result = render(tmp_path, grain=0.02)
    assert isinstance(result, RenderResult)
    video = Path(result.output_path)
    boxes = dict(top_level_boxes(video))
    assert "moov" in boxes and "mdat" in boxes
    assert boxes["moov"] < boxes["mdat"], "moov must precede mdat (faststart)"
    with av.open(str(video)) as container:
        assert "mp4" in container.format.name
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        assert stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (192, 108)
        assert stream.average_rate == 12
        count = sum(1 for _ in container.decode(stream))
    assert count == result.frames == len(result.script.scenes) * 12
    assert result.duration_s == pytest.approx(result.frames / 12)
    assert result.codec == "h264" and result.size_bytes == video.stat().st_size
    with Image.open(result.poster_path) as poster:
        assert poster.format == "JPEG" and poster.size == (192, 108)
    assert json.loads(json.dumps(result.to_dict()))["script"]["title"] == result.script.title


def test_same_params_give_byte_identical_video(tmp_path: Path) -> None:
    # 320 wide is a width at which x264's AVX-512 code used to make encodes differ run to run.
    params = {"width": 320, "height": 180, "grain": 0.02, "seconds_per_scene": 0.5}
    a = render(tmp_path, "a", **params)
    b = render(tmp_path, "b", **params)
    assert Path(a.output_path).read_bytes() == Path(b.output_path).read_bytes()
    assert Path(a.poster_path).read_bytes() == Path(b.poster_path).read_bytes()


def test_decoded_video_matches_rendered_frames(tmp_path: Path) -> None:
    result = render(tmp_path, crf=12)
    source = frames()
    out = decoded(Path(result.output_path))
    assert len(out) == len(source)
    assert max(mean_abs_diff(a, b) for a, b in zip(source, out, strict=True)) < 4.0


def test_higher_crf_gives_smaller_file(tmp_path: Path) -> None:
    fine = render(tmp_path, "fine", crf=18, grain=0.02)
    coarse = render(tmp_path, "coarse", crf=38, grain=0.02)
    assert coarse.size_bytes < 0.7 * fine.size_bytes


def test_faster_preset_gives_bigger_file(tmp_path: Path) -> None:
    quick = render(tmp_path, "quick", preset="ultrafast")
    careful = render(tmp_path, "careful", preset="medium")
    assert quick.size_bytes > careful.size_bytes


def test_progress_reports_at_most_twenty_increasing_fractions_ending_at_one(
    tmp_path: Path,
) -> None:
    seen: list[float] = []
    render_video(
        prompt=PROMPT,
        params=SMALL,
        output_path=tmp_path / "v.mp4",
        poster_path=tmp_path / "p.jpg",
        progress=seen.append,
    )
    assert 2 <= len(seen) <= 20
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert all(0.0 < f <= 1.0 for f in seen) and seen[-1] == 1.0


def test_render_creates_missing_parent_folders(tmp_path: Path) -> None:
    result = render_video(
        prompt=PROMPT,
        params=SMALL,
        output_path=tmp_path / "a" / "b" / "v.mp4",
        poster_path=tmp_path / "c" / "p.jpg",
    )
    assert Path(result.output_path).is_file() and Path(result.poster_path).is_file()


def test_failed_render_leaves_no_partial_file(tmp_path: Path, monkeypatch) -> None:
    output, poster = tmp_path / "v.mp4", tmp_path / "p.jpg"
    output.write_bytes(b"previous good video")

    real_iter_frames = renderer.iter_frames

    def failing_frames(prompt: str, params: dict):
        # Fail after the poster frame was written and the encoder has real data in flight.
        for index, frame in enumerate(real_iter_frames(prompt, params)):
            if index == 30:
                raise RuntimeError("encoder died")
            yield frame

    monkeypatch.setattr(renderer, "iter_frames", failing_frames)
    with pytest.raises(RuntimeError, match="encoder died"):
        render_video(prompt=PROMPT, params=SMALL, output_path=output, poster_path=poster)
    # The old file is untouched, no poster appeared, and no temporary file is left behind.
    assert output.read_bytes() == b"previous good video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_interrupted_progress_callback_leaves_no_partial_file(tmp_path: Path) -> None:
    def interrupt(fraction: float) -> None:
        if fraction > 0.3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        render_video(
            prompt=PROMPT,
            params=SMALL,
            output_path=tmp_path / "v.mp4",
            poster_path=tmp_path / "p.jpg",
            progress=interrupt,
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("bad", "key"),
    [
        ({"crf": 99}, "crf"),
        ({"width": 321}, "width"),
        ({"transition_style": "spin"}, "transition_style"),
        ({"grain": "lots"}, "grain"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_invalid_params_raise_invalid_params_naming_key(
    bad: dict, key: str, tmp_path: Path
) -> None:
    with pytest.raises(InvalidParams) as render_error:
        render(tmp_path, **bad)
    assert key in render_error.value.details
    with pytest.raises(InvalidParams) as frames_error:
        iter_frames(PROMPT, {**SMALL, **bad})  # raised at the call, not on first next()
    assert key in frames_error.value.details
    assert list(tmp_path.iterdir()) == []
