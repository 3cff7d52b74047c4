"""The built-in deterministic procedural renderer.

Turns a prompt into a short briefing-style video (title card, then key-point scenes with on-screen
text over animated graphics) with no GPU and no model weights, so the feedback loop can run
anywhere. Same prompt + params (including ``seed``) give identical frames.

Every parameter in ``parameters.json`` (the declaration) has a measurable effect with a
trade-off, because the improver can only learn from knobs that change something:

* ``model_variant`` draws at ``RENDER_SCALE`` of the output size and upscales: cheaper, softer.
* ``camera_speed`` moves a Ken-Burns camera over background and graphics: livelier, but more
  frame-to-frame change (harder to encode, shakier for a viewer).
* ``transition_style``/``transition_seconds`` smooth scene changes, at the cost of frames in
  which two scenes' text overlap.
* ``grain`` adds noise, ``denoise`` removes it at the cost of softness, ``sharpen`` restores edges
  at the cost of amplified noise and halos.
* ``crf``/``preset`` trade file size and encode time against compression artifacts.

Frame pipeline: scene at internal scale (background warped by the camera, graphics drawn through
the same camera, then a screen-fixed text panel) -> transition blend -> upscale -> grain ->
denoise -> sharpen -> uint8 RGB.
"""

from __future__ import annotations

import functools
import math
import os
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from statistics import NormalDist
from typing import Any

import av
import cv2
import numpy as np
from PIL import Image

from .declaration import builtin_params
from .scripting import Scene, Script, build_script, to_ascii

__all__ = [
    "RenderResult",
    "Scene",
    "Script",
    "build_script",
    "iter_frames",
    "render_video",
]

CODEC = "h264"
PIX_FMT = "yuv420p"

_FONT = cv2.FONT_HERSHEY_SIMPLEX
# On-screen cap height as a fraction of the output height at text_scale 1.0 (~22 px at 360p).
_POINT_TEXT_FRAC = 0.06
_TITLE_TEXT_FRAC = 0.09
_WORLD_MARGIN = 1.25  # the background is this much larger than the view, for camera headroom
_SHIFT = 4  # sub-pixel bits for cv2 drawing, so slow motion moves smoothly instead of in steps
_ONE = 1 << _SHIFT
_GRAIN_STREAM = 0x6A41  # separate RNG streams so grain and layout never share random numbers
_LAYOUT_STREAM = 0x1A70
_GRAIN_CHUNK = 1 << 16

# (background A, background B, accent 1, accent 2, accent 3), RGB.
_PALETTES = (
    ((24, 44, 84), (58, 110, 165), (255, 183, 3), (251, 133, 0), (142, 202, 230)),
    ((38, 70, 83), (42, 157, 143), (233, 196, 106), (244, 162, 97), (231, 111, 81)),
    ((45, 27, 78), (120, 60, 140), (255, 209, 102), (6, 214, 160), (239, 71, 111)),
    ((20, 33, 61), (80, 80, 80), (252, 163, 17), (229, 229, 229), (100, 180, 255)),
    ((16, 60, 48), (70, 130, 90), (250, 240, 170), (255, 130, 90), (160, 220, 255)),
    ((60, 30, 30), (150, 70, 50), (255, 220, 140), (120, 200, 220), (240, 240, 240)),
)
_GRAPHICS = ("bars", "shapes", "ring", "line")
_LIGHT = np.array((246.0, 246.0, 240.0))
# Internal render scale per model variant: the frame is drawn at this fraction of the output size
# and upscaled, so "draft" is faster and visibly softer.
RENDER_SCALE = {"draft": 0.5, "standard": 0.75, "hq": 1.0}


@dataclass(frozen=True)
class RenderResult:
    output_path: str
    poster_path: str
    script: Script
    frames: int
    fps: int
    width: int
    height: int
    duration_s: float
    codec: str
    size_bytes: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_path": self.output_path,
            "poster_path": self.poster_path,
            "script": self.script.to_dict(),
            "frames": self.frames,
            "fps": self.fps,
            "width": self.width,
            "height": self.height,
            "duration_s": self.duration_s,
            "codec": self.codec,
            "size_bytes": self.size_bytes,
        }


# ---------------------------------------------------------------------------------------------
# Layout: decided once per scene, in output pixels, so every model_variant wraps text identically.


@dataclass(frozen=True)
class _TextLayout:
    rows: tuple[str, ...]
    font_scale: float  # at output resolution
    origins: tuple[tuple[float, float], ...]  # (x, baseline y) per row, output pixels
    panel: tuple[float, float, float, float]  # x0, y0, x1, y1 in output pixels


@dataclass(frozen=True)
class _SceneLook:
    index: int
    scene: Scene
    graphic: str
    graphic_box: tuple[float, float, float, float]  # normalised x0, y0, x1, y1 of the view
    text: _TextLayout
    panel_rgb: tuple[float, float, float]
    text_rgb: tuple[float, float, float]
    accents: tuple[tuple[int, int, int], ...]
    bg_colors: tuple[tuple[int, int, int], tuple[int, int, int]]
    bg_angle: float
    camera_phase: float
    shape_seeds: np.ndarray = field(repr=False)  # per-scene random numbers for the graphic


@functools.cache
def _cap_px_per_scale() -> float:
    """Rendered cap height of ``_FONT`` at fontScale 1.0, measured rather than assumed.

    OpenCV 4's Hershey glyphs and OpenCV 5's built-in font differ in size at the same scale.
    """
    probe = np.zeros((200, 300), np.uint8)
    cv2.putText(probe, "H", (20, 150), _FONT, 1.0, 255, 2, cv2.LINE_AA)
    rows = np.flatnonzero(probe.max(axis=1) > 127)
    return float(rows[-1] - rows[0] + 1) if rows.size else 22.0


def _text_size(text: str, font_scale: float, thickness: int) -> tuple[int, int]:
    (w, h), _ = cv2.getTextSize(text, _FONT, font_scale, thickness)
    return w, h


def _thickness(font_scale: float) -> int:
    return max(1, round(font_scale * 2.0))


def _wrap(text: str, font_scale: float, max_w: float) -> list[str]:
    thick = _thickness(font_scale)
    rows: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if current and _text_size(candidate, font_scale, thick)[0] > max_w:
            rows.append(current)
            current = word
        else:
            current = candidate
    rows.append(current)
    return rows


def _layout_text(
    text: str,
    *,
    box: tuple[float, float, float, float],
    text_px: float,
    max_rows: int,
    center: bool,
    anchor: str,
) -> _TextLayout:
    """Wrap text into ``box`` (output pixels), shrinking the font until it fits."""
    x0, y0, x1, y1 = box
    max_w, max_h = x1 - x0, y1 - y0
    font_scale = text_px / _cap_px_per_scale()
    # Enough 10% steps to go from a 1080p-tall, 2x-scaled title down to the floor.
    for _ in range(60):
        rows = _wrap(text, font_scale, max_w)
        thick = _thickness(font_scale)
        cap = _text_size("Ag", font_scale, thick)[1]
        line_h = cap * 1.7
        widths = [_text_size(r, font_scale, thick)[0] for r in rows]
        block_h = cap + line_h * (len(rows) - 1)
        if (max(widths) <= max_w and len(rows) <= max_rows and block_h <= max_h) or (
            font_scale < 0.2
        ):
            break
        font_scale *= 0.9
    pad = cap * 0.9
    top = y1 - block_h if anchor == "bottom" else y0 + (max_h - block_h) / 2
    origins = []
    for i, w in enumerate(widths):
        x = x0 + (max_w - w) / 2 if center else x0
        origins.append((x, top + cap + i * line_h))
    panel = (x0 - pad, top - pad, x1 + pad, top + block_h + pad)
    return _TextLayout(tuple(rows), font_scale, tuple(origins), panel)


def _scene_looks(script: Script, prompt: str, params: dict[str, Any]) -> list[_SceneLook]:
    width, height = params["width"], params["height"]
    text_scale, contrast = params["text_scale"], params["text_contrast"]
    # The prompt joins the seed so two prompts rendered with the default seed still look different.
    layout_key = [params["seed"], _LAYOUT_STREAM, zlib.crc32(to_ascii(prompt).encode())]
    video_rng = np.random.default_rng(layout_key)
    palette = _PALETTES[int(video_rng.integers(len(_PALETTES)))]
    graphic_order = [_GRAPHICS[i] for i in video_rng.permutation(len(_GRAPHICS))]
    looks = []
    for index, scene in enumerate(script.scenes):
        rng = np.random.default_rng([*layout_key, index])
        bg_a, bg_b = palette[0], palette[1]
        if rng.random() < 0.5:
            bg_a, bg_b = bg_b, bg_a
        accents = tuple(palette[2:])
        if scene.kind == "title":
            graphic = "shapes"
            graphic_box = (0.0, 0.0, 1.0, 1.0)
            text = _layout_text(
                scene.text,
                box=(0.08 * width, 0.30 * height, 0.92 * width, 0.70 * height),
                text_px=_TITLE_TEXT_FRAC * height * text_scale,
                max_rows=3,
                center=True,
                anchor="middle",
            )
        else:
            graphic = graphic_order[(index - 1) % len(graphic_order)]
            if rng.random() < 0.5:  # lower third: graphic above, text below
                graphic_box = (0.12, 0.10, 0.88, 0.50)
                text_box = (0.07 * width, 0.62 * height, 0.93 * width, 0.90 * height)
                max_rows, anchor = 3, "bottom"
            else:  # side by side: text left, graphic right
                graphic_box = (0.64, 0.18, 0.94, 0.82)
                text_box = (0.07 * width, 0.15 * height, 0.57 * width, 0.85 * height)
                max_rows, anchor = 5, "middle"
            text = _layout_text(
                scene.text,
                box=text_box,
                text_px=_POINT_TEXT_FRAC * height * text_scale,
                max_rows=max_rows,
                center=False,
                anchor=anchor,
            )
        # text_contrast moves the text colour from the panel colour towards near-white.
        panel = np.array(bg_a, dtype=float) * 0.35
        text_rgb = panel + contrast * (_LIGHT - panel)
        looks.append(
            _SceneLook(
                index=index,
                scene=scene,
                graphic=graphic,
                graphic_box=graphic_box,
                text=text,
                panel_rgb=tuple(float(c) for c in panel),
                text_rgb=tuple(float(c) for c in text_rgb),
                accents=accents,
                bg_colors=(bg_a, bg_b),
                bg_angle=float(rng.uniform(0, math.pi)),
                camera_phase=float(rng.uniform(0, 2 * math.pi)),
                shape_seeds=rng.random((8, 6)),
            )
        )
    return looks


# ---------------------------------------------------------------------------------------------
# Drawing at internal resolution.


def _background(look: _SceneLook, rw: int, rh: int) -> np.ndarray:
    """The static world layer the camera moves over; larger than the view."""
    ww, wh = math.ceil(rw * _WORLD_MARGIN), math.ceil(rh * _WORLD_MARGIN)
    ca, sa = math.cos(look.bg_angle), math.sin(look.bg_angle)
    proj = (
        np.arange(ww, dtype=np.float32)[None, :] * ca
        + np.arange(wh, dtype=np.float32)[:, None] * sa
    )
    t = (proj - proj.min()) / max(float(proj.max() - proj.min()), 1.0)
    a = np.array(look.bg_colors[0], np.float32)
    b = np.array(look.bg_colors[1], np.float32)
    img = a + t[..., None] * (b - a)
    # Soft blobs and a faint grid give the camera texture to move over.
    # Drawn and blurred at 1/8 size then upscaled: they are featureless anyway, and a full-size
    # blur this wide took seconds per scene at 1080p.
    sw, sh = max(8, ww // 8), max(8, wh // 8)
    blobs = np.zeros((sh, sw, 3), np.float32)
    for k, (u, v, r, *_rest) in enumerate(look.shape_seeds[:4]):
        color = look.accents[k % len(look.accents)]
        center = (int(u * sw), int(v * sh))
        cv2.circle(blobs, center, max(1, int((0.12 + 0.15 * r) * sh)), color, -1, cv2.LINE_AA)
    blobs = cv2.GaussianBlur(blobs, (0, 0), max(1.0, sh / 25))
    blobs = cv2.resize(blobs, (ww, wh), interpolation=cv2.INTER_LINEAR)
    img = img * 0.8 + blobs * 0.2
    grid = np.zeros((wh, ww), np.float32)
    step = max(4, wh // 8)
    line_w = max(1, round(wh / 300))
    for x in range(0, ww, step):
        cv2.line(grid, (x, 0), (x, wh), 1.0, line_w)
    for y in range(0, wh, step):
        cv2.line(grid, (0, y), (ww, y), 1.0, line_w)
    img = img + grid[..., None] * 18.0
    return np.clip(img, 0, 255).astype(np.uint8)


def _camera(
    look: _SceneLook, u: float, speed: float, rw: int, rh: int
) -> tuple[float, float, float]:
    """Zoom and pan offset (internal pixels) at scene-local time ``u``.

    Sinusoidal rather than linear so the move stays inside the background's margin however long
    the scene or fast the camera; the speed of motion still scales with ``camera_speed``.
    """
    angle = 0.6 * speed * u
    phase = look.camera_phase
    amp_x, amp_y = 0.055 * rw, 0.055 * rh
    off_x = amp_x * (math.sin(angle + phase) - math.sin(phase))
    off_y = amp_y * (math.cos(0.8 * angle + phase) - math.cos(phase))
    zoom = 1.0 + 0.04 * (1.0 - math.cos(0.7 * angle))
    return zoom, off_x, off_y


def _ease(x: float) -> float:
    x = min(1.0, max(0.0, x))
    return x * x * (3 - 2 * x)


def _draw_graphic(
    img: np.ndarray,
    look: _SceneLook,
    u: float,
    to_px: Callable[[float, float], tuple[int, int]],
    zoom: float,
) -> None:
    rh, rw = img.shape[:2]
    gx0, gy0, gx1, gy1 = look.graphic_box
    seeds = look.shape_seeds
    accents = look.accents
    unit = min(rw * (gx1 - gx0), rh * (gy1 - gy0)) * zoom  # graphic size in internal pixels
    aa = cv2.LINE_AA
    if look.graphic == "bars":
        count = 4 + int(seeds[0, 0] * 3)
        grow = _ease(u / 0.8)
        slot = (gx1 - gx0) / count
        base = to_px(gx0, gy1)
        cv2.line(img, base, to_px(gx1, gy1), accents[2], max(1, round(unit / 60)), aa, _SHIFT)
        for i in range(count):
            wobble = 1.0 + 0.05 * math.sin(2.2 * u + 1.7 * i)
            frac = (0.3 + 0.7 * seeds[i, 1]) * grow * wobble
            top = gy1 - frac * (gy1 - gy0) * 0.95
            x0 = gx0 + slot * (i + 0.18)
            x1 = gx0 + slot * (i + 0.82)
            cv2.rectangle(img, to_px(x0, top), to_px(x1, gy1), accents[i % 2], -1, aa, _SHIFT)
    elif look.graphic == "shapes":
        for i in range(6 if look.scene.kind == "title" else 5):
            cx = gx0 + (0.1 + 0.8 * seeds[i, 0]) * (gx1 - gx0)
            cy = gy0 + (0.1 + 0.8 * seeds[i, 1]) * (gy1 - gy0)
            omega = 0.8 + 0.8 * seeds[i, 2]
            drift = 0.06 + 0.06 * seeds[i, 3]
            x = cx + drift * math.cos(omega * u + 6.28 * seeds[i, 4])
            y = cy + drift * math.sin(omega * u + 6.28 * seeds[i, 4])
            size = (0.05 + 0.06 * seeds[i, 5]) * unit
            color = accents[i % len(accents)]
            cxp, cyp = to_px(x, y)
            kind = i % 3
            if kind == 0:
                cv2.circle(img, (cxp, cyp), int(size * _ONE), color, -1, aa, _SHIFT)
            else:
                rot = omega * u * 0.6 + seeds[i, 0] * 6.28
                corners = 3 if kind == 1 else 4
                pts = [
                    (
                        cxp + size * _ONE * math.cos(rot + 2 * math.pi * k / corners),
                        cyp + size * _ONE * math.sin(rot + 2 * math.pi * k / corners),
                    )
                    for k in range(corners)
                ]
                cv2.fillPoly(img, [np.array(pts, np.int32)], color, aa, _SHIFT)
    elif look.graphic == "ring":
        center = to_px((gx0 + gx1) / 2, (gy0 + gy1) / 2)
        radius = int(0.36 * unit * _ONE)
        thick = max(2, round(unit / 14))
        value = 0.45 + 0.5 * seeds[0, 0]
        sweep = 360.0 * value * _ease(u / 1.2)
        start = -90.0 + 20.0 * math.sin(0.9 * u)
        cv2.ellipse(
            img, center, (radius, radius), 0, 0, 360, accents[2], max(1, thick // 3), aa, _SHIFT
        )
        cv2.ellipse(
            img, center, (radius, radius), 0, start, start + sweep, accents[0], thick, aa, _SHIFT
        )
        orbit = math.radians(start + sweep)
        dot = (
            int(center[0] + radius * math.cos(orbit)),
            int(center[1] + radius * math.sin(orbit)),
        )
        cv2.circle(img, dot, int(thick * 0.9 * _ONE), accents[1], -1, aa, _SHIFT)
    else:  # line chart drawn progressively, with a moving head
        points = 7
        reveal = _ease(u / 1.5) * (points - 1)
        coords = []
        for i in range(points):
            level = 0.2 + 0.6 * seeds[i, 2] + 0.04 * math.sin(1.8 * u + i)
            coords.append((gx0 + (gx1 - gx0) * i / (points - 1), gy1 - level * (gy1 - gy0)))
        shown = [to_px(*coords[i]) for i in range(int(reveal) + 1)]
        if int(reveal) < points - 1:
            f = reveal - int(reveal)
            (ax, ay), (bx, by) = coords[int(reveal)], coords[int(reveal) + 1]
            shown.append(to_px(ax + f * (bx - ax), ay + f * (by - ay)))
        cv2.line(
            img, to_px(gx0, gy1), to_px(gx1, gy1), accents[2], max(1, round(unit / 80)), aa, _SHIFT
        )
        if len(shown) > 1:
            cv2.polylines(
                img,
                [np.array(shown, np.int32)],
                False,
                accents[0],
                max(2, round(unit / 30)),
                aa,
                _SHIFT,
            )
        cv2.circle(img, shown[-1], int(unit / 22 * _ONE), accents[1], -1, aa, _SHIFT)


def _draw_text(img: np.ndarray, look: _SceneLook, scale: float, accent_w: float) -> None:
    layout = look.text
    rh, rw = img.shape[:2]
    x0, y0, x1, y1 = (round(v * scale) for v in layout.panel)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(rw, x1), min(rh, y1)
    if x1 > x0 and y1 > y0:
        roi = img[y0:y1, x0:x1]
        panel = np.empty_like(roi)
        panel[:] = np.rint(look.panel_rgb).astype(np.uint8)
        # Mostly opaque so text contrast is set by text_contrast, not by what moves underneath.
        img[y0:y1, x0:x1] = cv2.addWeighted(roi, 0.1, panel, 0.9, 0.0)
        bar = max(1, round(accent_w * scale))
        img[y0:y1, x0 : x0 + bar] = look.accents[0]
    font_scale = layout.font_scale * scale
    thick = _thickness(font_scale)
    color = look.text_rgb
    for row, (x, y) in zip(layout.rows, layout.origins, strict=True):
        cv2.putText(
            img,
            row,
            (round(x * scale), round(y * scale)),
            _FONT,
            font_scale,
            color,
            thick,
            cv2.LINE_AA,
        )


class _SceneRenderer:
    """Draws scenes at internal resolution, caching each scene's background."""

    def __init__(self, looks: list[_SceneLook], params: dict[str, Any]) -> None:
        self.looks = looks
        self.params = params
        self.scale = RENDER_SCALE[params["model_variant"]]
        self.rw = max(2, round(params["width"] * self.scale))
        self.rh = max(2, round(params["height"] * self.scale))
        self._backgrounds: dict[int, np.ndarray] = {}

    def _background_for(self, index: int) -> np.ndarray:
        if index not in self._backgrounds:
            # Scenes are visited in order, so only the current and next need to stay in memory.
            for old in [k for k in self._backgrounds if k < index - 1]:
                del self._backgrounds[old]
            self._backgrounds[index] = _background(self.looks[index], self.rw, self.rh)
        return self._backgrounds[index]

    def draw(self, index: int, t: float) -> np.ndarray:
        look = self.looks[index]
        rw, rh = self.rw, self.rh
        u = t - look.scene.start_s
        zoom, off_x, off_y = _camera(look, u, self.params["camera_speed"], rw, rh)
        world = self._background_for(index)
        wcx, wcy = world.shape[1] / 2, world.shape[0] / 2
        matrix = np.array(
            [[zoom, 0.0, rw / 2 - zoom * (wcx + off_x)], [0.0, zoom, rh / 2 - zoom * (wcy + off_y)]]
        )
        img = cv2.warpAffine(
            world, matrix, (rw, rh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )

        def to_px(nx: float, ny: float) -> tuple[int, int]:
            # Graphics live in the world too, so the same camera transform applies to them.
            sx = zoom * ((nx - 0.5) * rw - off_x) + rw / 2
            sy = zoom * ((ny - 0.5) * rh - off_y) + rh / 2
            return round(sx * _ONE), round(sy * _ONE)

        _draw_graphic(img, look, u, to_px, zoom)
        _draw_text(img, look, self.scale, accent_w=0.008 * self.params["height"])
        return img


def _blend(a: np.ndarray, b: np.ndarray, alpha: float, style: str) -> np.ndarray:
    if style == "crossfade":
        return cv2.addWeighted(a, 1.0 - alpha, b, alpha, 0.0)
    if style == "fade_black":
        if alpha < 0.5:
            return cv2.convertScaleAbs(a, alpha=1.0 - 2.0 * alpha)
        return cv2.convertScaleAbs(b, alpha=2.0 * alpha - 1.0)
    # wipe: the next scene slides in from the left behind a soft edge
    w = a.shape[1]
    edge = max(2.0, 0.03 * w)
    xs = np.arange(w, dtype=np.float32)
    mask = np.clip((alpha * (w + edge) - xs) / edge, 0.0, 1.0)[None, :, None]
    out = a.astype(np.float32) + (b.astype(np.float32) - a.astype(np.float32)) * mask
    return (out + 0.5).astype(np.uint8)


@functools.cache
def _normal_table() -> np.ndarray:
    """Standard-normal quantiles for 16-bit uniforms.

    Looking random uint16s up in this table is several times faster than ``standard_normal``
    (grain was most of the render time) and still Gaussian to 1/65536 in probability.
    """
    dist = NormalDist()
    table = np.array([dist.inv_cdf((i + 0.5) / 65536) for i in range(65536)], np.float64)
    return table / table.std()


@functools.lru_cache(maxsize=8)
def _grain_table(sigma: float) -> np.ndarray:
    # Rounded to integers: the frame is uint8 here, so round(img + n) == img + round(n) exactly.
    return np.rint(_normal_table() * sigma).astype(np.int16)


def _post_process(img: np.ndarray, params: dict[str, Any], frame_index: int) -> np.ndarray:
    grain, denoise, sharpen = params["grain"], params["denoise"], params["sharpen"]
    if grain > 0:
        rng = np.random.default_rng([params["seed"], _GRAIN_STREAM, frame_index])
        picks = rng.integers(0, 1 << 16, img.size, dtype=np.uint16)
        table = _grain_table(grain * 255.0)
        noise = np.empty(img.size, np.int16)
        # In cache-sized chunks: one big take() converts all indices to intp first and runs
        # ~3x slower at 1080p. Indices are < 65536 by construction, so "clip" never clips.
        for start in range(0, img.size, _GRAIN_CHUNK):
            part = slice(start, start + _GRAIN_CHUNK)
            np.take(table, picks[part], out=noise[part], mode="clip")
        noisy = img.astype(np.int16)
        noisy += noise.reshape(img.shape)
        np.clip(noisy, 0, 255, out=noisy)  # a real noisy frame saturates too
        img = noisy.astype(np.uint8)
    if denoise <= 0 and sharpen <= 0:
        return img
    x = img.astype(np.float32)
    if denoise > 0:
        # Stronger denoise = wider blur and more of it: less noise, softer edges.
        blurred = cv2.GaussianBlur(x, (0, 0), 0.6 + 1.2 * denoise)
        x = cv2.addWeighted(x, 1.0 - denoise, blurred, denoise, 0.0)
    if sharpen > 0:
        blurred = cv2.GaussianBlur(x, (0, 0), 1.0)
        x = cv2.addWeighted(x, 1.0 + sharpen, blurred, -sharpen, 0.0)
    np.clip(x, 0.0, 255.0, out=x)
    x += 0.5
    return x.astype(np.uint8)


# ---------------------------------------------------------------------------------------------
# Public API.


def _frame_count(script: Script, fps: int) -> int:
    return max(1, round(script.duration_s * fps))


def _poster_index(script: Script, fps: int, total: int) -> int:
    scene = script.scenes[1] if len(script.scenes) > 1 else script.scenes[0]
    return min(total - 1, round((scene.start_s + scene.end_s) / 2 * fps))


def _prepare(prompt: str, params: dict[str, Any]) -> tuple[dict[str, Any], Script]:
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError("prompt must be a non-empty string")
    clean = builtin_params(params)
    script = build_script(prompt, clean["seed"], seconds_per_scene=clean["seconds_per_scene"])
    return clean, script


def _frames(prompt: str, params: dict[str, Any], script: Script) -> Iterator[np.ndarray]:
    fps = params["fps"]
    width, height = params["width"], params["height"]
    seconds = params["seconds_per_scene"]
    style = params["transition_style"]
    # Capped at half a scene so the middle half of every scene shows its text unobstructed.
    trans = 0.0 if style == "cut" else min(params["transition_seconds"], seconds / 2)
    looks = _scene_looks(script, prompt, params)
    drawer = _SceneRenderer(looks, params)
    count = len(script.scenes)
    for frame_index in range(_frame_count(script, fps)):
        t = frame_index / fps
        boundary = min(count - 1, max(1, round(t / seconds)))
        start = boundary * seconds - trans / 2
        if trans > 0 and count > 1 and start <= t < start + trans:
            alpha = (t - start) / trans
            img = _blend(drawer.draw(boundary - 1, t), drawer.draw(boundary, t), alpha, style)
        else:
            img = drawer.draw(min(count - 1, int(t // seconds)), t)
        if img.shape[1] != width or img.shape[0] != height:
            img = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
        yield _post_process(img, params, frame_index)


def iter_frames(prompt: str, params: dict[str, Any]) -> Iterator[np.ndarray]:
    """Yield the video's frames (RGB uint8, HxWx3) one at a time.

    Params are validated (and defaults filled) immediately, not on the first ``next()``.
    """
    clean, script = _prepare(prompt, params)
    return _frames(prompt, clean, script)


@functools.cache
def _x264_asm_override() -> str | None:
    """x264 CPU flags to use instead of auto-detection, or None to keep auto-detection.

    With its AVX-512 routines x264 gave different bytes for identical frames from run to run
    (seen at widths that are not a multiple of 128: 320, 352, 480), so a render would not be
    reproducible and metrics of the same config would jitter. Capping x264 at AVX2 fixes that at
    no measurable speed cost. Only done where /proc/cpuinfo shows AVX-512 *and* the AVX2 set, so
    x264 is never told to use an instruction set the CPU lacks.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.partition(":")[2].split())
            break
    if "avx512f" in flags and {"avx2", "fma", "bmi1", "bmi2"} <= flags:
        return "SSE2Fast,AVX2"
    return None


def _x264_options(params: dict[str, Any]) -> dict[str, str]:
    options = {"crf": str(params["crf"]), "preset": params["preset"]}
    asm = _x264_asm_override()
    if asm:
        options["x264-params"] = f"asm={asm}"
    return options


def _encoder_frame(rgb: np.ndarray) -> av.VideoFrame:
    """An encoder-ready yuv420p frame whose row padding is set by us, not left uninitialised.

    libavcodec would copy a PyAV-made frame into fresh buffers with uninitialised row padding;
    handing it a refcounted frame whose padding repeats the edge pixels removes one source of
    run-to-run differences (see ``_x264_options`` for the one that mattered). OpenCV's
    RGB->I420 is deterministic and matches swscale's BT.601 limited range.
    """
    height, width = rgb.shape[:2]
    flat = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).reshape(-1)
    cw, ch = width // 2, height // 2
    planes = (
        flat[: width * height].reshape(height, width),
        flat[width * height : width * height + cw * ch].reshape(ch, cw),
        flat[width * height + cw * ch :].reshape(ch, cw),
    )
    frame = av.VideoFrame(width, height, PIX_FMT)
    frame.make_writable()  # swaps in refcounted, padded buffers that the encoder will not copy
    for plane, src in zip(frame.planes, planes, strict=True):
        rows, cols = src.shape
        dst = np.frombuffer(plane, np.uint8).reshape(rows, plane.line_size)
        dst[:, :cols] = src
        dst[:, cols:] = src[:, -1:]
    return frame


def _temp_sibling(path: Path) -> Path:
    # Same folder so os.replace is an atomic rename; hidden + ".part" marks it as unfinished.
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.part")


def render_video(
    *,
    prompt: str,
    params: dict[str, Any],
    output_path: str | Path,
    poster_path: str | Path,
    progress: Callable[[float], None] | None = None,
) -> RenderResult:
    """Render the prompt to an H.264 MP4 (faststart) plus a JPEG poster, atomically.

    Nothing appears at ``output_path``/``poster_path`` unless the whole render succeeded; an
    existing file there is left untouched on failure. ``progress`` gets fractions in (0, 1],
    at most 20 calls, the last one 1.0 once both files are in place.
    """
    clean, script = _prepare(prompt, params)
    output_path, poster_path = Path(output_path), Path(poster_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    poster_path.parent.mkdir(parents=True, exist_ok=True)
    fps, width, height = clean["fps"], clean["width"], clean["height"]
    total = _frame_count(script, fps)
    poster_at = _poster_index(script, fps, total)

    tmp_video, tmp_poster = _temp_sibling(output_path), _temp_sibling(poster_path)
    try:
        container = av.open(
            str(tmp_video), mode="w", format="mp4", container_options={"movflags": "+faststart"}
        )
        try:
            stream = container.add_stream("libx264", rate=fps, options=_x264_options(clean))
            stream.width, stream.height, stream.pix_fmt = width, height, PIX_FMT
            # One encoder thread: x264's output depends on its thread count, which would
            # otherwise follow the machine's CPU count and break byte-for-byte reproducibility.
            stream.codec_context.thread_count = 1
            time_base = Fraction(1, fps)
            reported = 0
            written = 0
            for index, rgb in enumerate(iter_frames(prompt, clean)):
                if index == poster_at:
                    Image.fromarray(rgb).save(tmp_poster, format="JPEG", quality=90)
                frame = _encoder_frame(rgb)
                frame.pts = index
                frame.time_base = time_base
                container.mux(stream.encode(frame))
                written = index + 1
                bucket = written * 19 // total
                if progress is not None and bucket > reported:
                    reported = bucket
                    progress(bucket / 20)
            container.mux(stream.encode(None))
        finally:
            container.close()
        if written != total:
            raise RuntimeError(f"renderer produced {written} frames, expected {total}")
        os.replace(tmp_poster, poster_path)
        os.replace(tmp_video, output_path)
    except BaseException:
        for leftover in (tmp_video, tmp_poster):
            leftover.unlink(missing_ok=True)
        raise
    if progress is not None:
        progress(1.0)
    return RenderResult(
        output_path=str(output_path),
        poster_path=str(poster_path),
        script=script,
        frames=total,
        fps=fps,
        width=width,
        height=height,
        duration_s=round(total / fps, 6),
        codec=CODEC,
        size_bytes=output_path.stat().st_size,
    )


def _main() -> None:  # pragma: no cover - manual timing aid: python -m pipelines.builtin.renderer
    import sys
    import tempfile

    prompt = " ".join(sys.argv[1:]) or "A short briefing about solar panels for homeowners"
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        result = render_video(
            prompt=prompt,
            params={},
            output_path=Path(tmp) / "out.mp4",
            poster_path=Path(tmp) / "poster.jpg",
        )
        elapsed = time.perf_counter() - started
    print(f"{result.frames} frames, {result.size_bytes} bytes in {elapsed:.2f}s")


if __name__ == "__main__":  # pragma: no cover
    _main()
