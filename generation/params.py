"""The built-in renderer's parameter schema.

One source of truth for what a ConfigRevision may hold: the model validates against it, the
renderer reads its defaults, and the improver searches over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError


@dataclass(frozen=True)
class ParamSpec:
    kind: str  # "int", "float" or "choice"
    default: Any
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] = ()
    help: str = ""

    def allowed(self) -> str:
        if self.kind == "choice":
            return "one of " + ", ".join(self.choices)
        return f"{self.kind} in [{self.low:g}, {self.high:g}]"

    def coerce(self, key: str, value: Any) -> Any:
        """Return the value in its canonical type or raise ValidationError naming the key."""
        error = ValidationError(
            {key: f"{key}={value!r} is not allowed; expected {self.allowed()}"}, code="invalid"
        )
        if self.kind == "choice":
            if value not in self.choices:
                raise error
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise error
        if self.kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise error
            value = int(value)
        else:
            value = float(value)
        if not (self.low <= value <= self.high):
            raise error
        return value


MODEL_VARIANTS = ("draft", "standard", "hq")
# Internal render scale per variant: the frame is drawn at this fraction of the output size and
# upscaled, so "draft" is faster and visibly softer.
RENDER_SCALE = {"draft": 0.5, "standard": 0.75, "hq": 1.0}
TRANSITION_STYLES = ("cut", "crossfade", "fade_black", "wipe")
X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
)

PARAM_SCHEMA: dict[str, ParamSpec] = {
    "model_variant": ParamSpec(
        "choice",
        "standard",
        choices=MODEL_VARIANTS,
        help="internal render scale: draft 0.5, standard 0.75, hq 1.0",
    ),
    "width": ParamSpec("int", 640, 160, 1920, help="output width in pixels (even)"),
    "height": ParamSpec("int", 360, 90, 1080, help="output height in pixels (even)"),
    "fps": ParamSpec("int", 24, 8, 60, help="frames per second"),
    "seconds_per_scene": ParamSpec("float", 2.0, 0.5, 10.0, help="length of each scene"),
    "transition_style": ParamSpec(
        "choice", "crossfade", choices=TRANSITION_STYLES, help="how one scene turns into the next"
    ),
    "transition_seconds": ParamSpec("float", 0.4, 0.0, 2.0, help="length of each transition"),
    "camera_speed": ParamSpec("float", 0.5, 0.0, 3.0, help="pan/zoom speed of the camera"),
    "text_scale": ParamSpec("float", 1.0, 0.5, 2.0, help="on-screen text size multiplier"),
    "text_contrast": ParamSpec("float", 0.9, 0.1, 1.0, help="text/background contrast"),
    "grain": ParamSpec("float", 0.02, 0.0, 0.3, help="film grain strength (noise sigma / 255)"),
    "denoise": ParamSpec("float", 0.0, 0.0, 1.0, help="denoise filter strength"),
    "sharpen": ParamSpec("float", 0.0, 0.0, 2.0, help="unsharp-mask amount"),
    "crf": ParamSpec("int", 23, 0, 51, help="x264 constant rate factor (lower = better)"),
    "preset": ParamSpec("choice", "veryfast", choices=X264_PRESETS, help="x264 speed preset"),
    "seed": ParamSpec("int", 0, 0, 2**31 - 1, help="random seed for grain and layout"),
}

DEFAULT_PARAMS: dict[str, Any] = {key: spec.default for key, spec in PARAM_SCHEMA.items()}


def validate_params(params: dict[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Check params against the schema and return them canonicalised.

    With ``partial=False`` missing keys are filled from the defaults, so the result is a full,
    resolved parameter set. Every problem is reported at once, each under its key.
    """
    if not isinstance(params, dict):
        raise ValidationError({"params": "params must be a mapping of parameter name to value"})
    errors: dict[str, list[str]] = {}
    clean: dict[str, Any] = {}
    for key, value in params.items():
        spec = PARAM_SCHEMA.get(key)
        if spec is None:
            errors[key] = [
                f"unknown parameter {key!r}; allowed keys: {', '.join(sorted(PARAM_SCHEMA))}"
            ]
            continue
        try:
            clean[key] = spec.coerce(key, value)
        except ValidationError as exc:
            errors[key] = exc.message_dict[key]
    for key in ("width", "height"):
        if key in clean and clean[key] % 2:
            errors.setdefault(key, []).append(f"{key}={clean[key]} must be even (yuv420p)")
    if errors:
        raise ValidationError(errors)
    if partial:
        return clean
    return {**DEFAULT_PARAMS, **clean}


def params_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Keys whose value differs between two parameter sets: key -> (old, new)."""
    old = old or {}
    keys = sorted(set(old) | set(new))
    return {k: (old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k)}
