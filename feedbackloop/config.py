"""Loads and checks config/default_config.yaml.

Every error names the file and the key, so a typo is found in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from feedbackloop.errors import InvalidInput


class ConfigError(ValueError):
    def __init__(self, path: Path | str, key: str, problem: str) -> None:
        super().__init__(f"{path}: {key}: {problem}")
        self.path = str(path)
        self.key = key


@dataclass(frozen=True)
class Guardrails:
    max_failure_rate: float = 0.10
    max_generation_seconds_ratio: float = 1.5
    max_issue_rate_increase: float = 0.25


@dataclass(frozen=True)
class ImprovementCriteria:
    target_rating: float = 4.0
    min_effect: float = 0.25
    alpha: float = 0.05
    min_ratings_per_arm: int = 20
    canary_share: float = 0.2
    # The control's most recent generations from before an arm opened that count in the arm's
    # test (frozen per arm when it opens); 0: a purely concurrent control, for a panel whose
    # ratings drift within a test (docs/improvement-loop.md, "When the reviewer panel changes").
    control_history: int = 40
    guardrails: Guardrails = field(default_factory=Guardrails)


@dataclass(frozen=True)
class FeedbackSettings:
    min_feedback_for_analysis: int = 3
    analysis_frequency_minutes: int = 60
    require_approval: bool = False
    target_reviews_per_generation: int = 3
    improvement_criteria: ImprovementCriteria = field(default_factory=ImprovementCriteria)


@dataclass(frozen=True)
class PipelineEntry:
    """One pipeline the config file declares (see config/default_config.yaml)."""

    slug: str
    name: str
    description: str
    declaration: dict[str, Any]
    renderer: str
    params: dict[str, Any]  # revision 1's params when the pipeline has no active revision


@dataclass(frozen=True)
class LoopConfig:
    path: str
    pipelines: tuple[PipelineEntry, ...]
    default_pipeline: str
    feedback: FeedbackSettings
    output_dir: Path
    media_root: Path

    def pipeline(self, slug: str | None = None) -> PipelineEntry:
        slug = slug or self.default_pipeline
        for entry in self.pipelines:
            if entry.slug == slug:
                return entry
        raise ConfigError(self.path, "pipelines", f"no pipeline {slug!r} is declared here")


def _section(path: Path, data: Any, key: str) -> dict[str, Any]:
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(path, key, f"must be a mapping, got {type(data).__name__}")
    return data


def _number(path: Path, key: str, value: Any, *, kind: type, low: float, high: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(path, key, f"must be a number in [{low}, {high}], got {value!r}")
    if kind is int and not float(value).is_integer():
        raise ConfigError(path, key, f"must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(path, key, f"must be in [{low}, {high}], got {value!r}")
    return kind(value)


def _fill(path: Path, prefix: str, cls: type, data: dict[str, Any], bounds: dict) -> Any:
    known = {f for f in cls.__dataclass_fields__}
    for key in data:
        if key not in known:
            raise ConfigError(
                path, f"{prefix}.{key}", f"unknown key; allowed: {', '.join(sorted(known))}"
            )
    values = {}
    for key, value in data.items():
        if key in bounds:
            kind, low, high = bounds[key]
            if kind is bool:
                if not isinstance(value, bool):
                    raise ConfigError(
                        path, f"{prefix}.{key}", f"must be true or false, got {value!r}"
                    )
                values[key] = value
            else:
                values[key] = _number(path, f"{prefix}.{key}", value, kind=kind, low=low, high=high)
    return values


def load_config(path: str | Path) -> LoopConfig:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(path, "(file)", "no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(path, "(yaml)", f"not valid YAML: {exc}".replace("\n", " ")) from exc
    root = _section(path, data, "(root)")
    allowed_top = {"pipelines", "default_pipeline", "generator", "feedback", "storage"}
    for key in root:
        if key not in allowed_top:
            raise ConfigError(path, key, f"unknown key; allowed: {', '.join(sorted(allowed_top))}")
    base = path.resolve().parent.parent if path.resolve().parent.name == "config" else Path.cwd()
    pipelines = _pipelines(path, root, base)
    default_pipeline = root.get("default_pipeline", pipelines[0].slug)
    if default_pipeline not in {p.slug for p in pipelines}:
        raise ConfigError(
            path, "default_pipeline", f"{default_pipeline!r} is not one of the pipelines declared"
        )

    feedback = _section(path, root.get("feedback"), "feedback")
    criteria = _section(
        path, feedback.pop("improvement_criteria", None), "feedback.improvement_criteria"
    )
    guard = _section(
        path, criteria.pop("guardrails", None), "feedback.improvement_criteria.guardrails"
    )
    guardrails = Guardrails(
        **_fill(
            path,
            "feedback.improvement_criteria.guardrails",
            Guardrails,
            guard,
            {
                "max_failure_rate": (float, 0.0, 1.0),
                "max_generation_seconds_ratio": (float, 1.0, 100.0),
                "max_issue_rate_increase": (float, 0.0, 10.0),
            },
        )
    )
    improvement = ImprovementCriteria(
        guardrails=guardrails,
        **_fill(
            path,
            "feedback.improvement_criteria",
            ImprovementCriteria,
            criteria,
            {
                "target_rating": (float, 1.0, 5.0),
                "min_effect": (float, 0.0, 4.0),
                "alpha": (float, 0.0001, 0.5),
                "min_ratings_per_arm": (int, 1, 1_000_000),
                "canary_share": (float, 0.01, 0.99),
                "control_history": (int, 0, 10_000),
            },
        ),
    )
    feedback_settings = FeedbackSettings(
        improvement_criteria=improvement,
        **_fill(
            path,
            "feedback",
            FeedbackSettings,
            feedback,
            {
                "min_feedback_for_analysis": (int, 1, 1_000_000),
                "analysis_frequency_minutes": (int, 1, 60 * 24 * 30),
                "require_approval": (bool, 0, 0),
                "target_reviews_per_generation": (int, 1, 100),
            },
        ),
    )

    storage = _section(path, root.get("storage"), "storage")
    for key in storage:
        if key not in {"output_dir", "media_root"}:
            raise ConfigError(
                path, f"storage.{key}", "unknown key; allowed: media_root, output_dir"
            )
        if not isinstance(storage[key], str) or not storage[key].strip():
            raise ConfigError(
                path, f"storage.{key}", f"must be a non-empty path, got {storage[key]!r}"
            )
    return LoopConfig(
        path=str(path),
        pipelines=pipelines,
        default_pipeline=default_pipeline,
        feedback=feedback_settings,
        output_dir=base / storage.get("output_dir", "output"),
        media_root=base / storage.get("media_root", "media"),
    )


INSTALL_ROOT = Path(__file__).resolve().parent.parent

BUILTIN_ENTRY = {
    "slug": "builtin",
    "name": "Built-in renderer",
    "description": "The deterministic procedural renderer that ships with feedbackloop.",
    "declaration": "pipelines/builtin/parameters.json",
    "renderer": "pipelines.builtin.renderer:render_video",
}
PIPELINE_KEYS = {"slug", "name", "description", "declaration", "renderer", "params"}


def _pipelines(path: Path, root: dict[str, Any], base: Path) -> tuple[PipelineEntry, ...]:
    """The ``pipelines:`` list; a file without one declares the built-in pipeline. The older
    ``generator.params`` mapping still sets the built-in pipeline's first parameters."""
    from pipelines.declarations import load_declaration_file, params_check

    raw = root.get("pipelines")
    if raw is None:
        raw = [dict(BUILTIN_ENTRY)]
    if not isinstance(raw, list) or not raw:
        raise ConfigError(path, "pipelines", "must be a non-empty list of pipelines")
    generator = _section(path, root.get("generator"), "generator")
    legacy = _section(path, generator.get("params"), "generator.params")
    entries: list[PipelineEntry] = []
    for i, item in enumerate(raw):
        where = f"pipelines[{i}]"
        item = _section(path, item, where)
        unknown = set(item) - PIPELINE_KEYS
        if unknown:
            raise ConfigError(
                path,
                f"{where}.{sorted(unknown)[0]}",
                f"unknown key; allowed: {', '.join(sorted(PIPELINE_KEYS))}",
            )
        for key in ("slug", "name", "declaration"):
            if not isinstance(item.get(key), str) or not item[key].strip():
                raise ConfigError(path, f"{where}.{key}", "must be a non-empty string")
        declaration_path = Path(item["declaration"])
        if not declaration_path.is_absolute():
            # Relative to the project using the file; else to feedbackloop's own folder, where
            # the built-in declaration ships (a config/ folder copied into another project).
            candidates = [base / declaration_path, INSTALL_ROOT / declaration_path]
            declaration_path = next((c for c in candidates if c.is_file()), candidates[0])
        try:
            declaration = load_declaration_file(declaration_path)
        except InvalidInput as exc:
            raise ConfigError(path, f"{where}.declaration", exc.message) from exc
        own = _section(path, item.get("params"), f"{where}.params")
        params = dict(own)
        if item["slug"] == "builtin" and legacy:
            params = {**legacy, **own}
        try:
            params_check(declaration, params)
        except InvalidInput as exc:
            key, messages = next(iter(getattr(exc, "details", {"params": [exc.message]}).items()))
            # Name the key where the file has it: the older generator.params, or the pipeline's.
            written = "generator.params" if key in legacy and key not in own else f"{where}.params"
            raise ConfigError(path, f"{written}.{key}", "; ".join(messages)) from exc
        renderer = item.get("renderer", "")
        if not isinstance(renderer, str):
            raise ConfigError(path, f"{where}.renderer", "must be 'package.module:function'")
        entries.append(
            PipelineEntry(
                slug=item["slug"],
                name=item["name"],
                description=str(item.get("description", "")),
                declaration=declaration,
                renderer=renderer,
                params=params,
            )
        )
    slugs = [e.slug for e in entries]
    if len(set(slugs)) != len(slugs):
        raise ConfigError(path, "pipelines", "each slug may be declared once")
    return tuple(entries)
