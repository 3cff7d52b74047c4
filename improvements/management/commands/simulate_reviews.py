"""Drive the whole loop with simulated reviewers: generate → rate → analyse → propose →
approve → canary → decide, round after round, on the configured database.

Videos are really rendered and measured (generation_request + generation_run +
metrics_compute); only the reviewers are simulated. Reviewer j rates dimension d of a video as

    clip(round(q_d(video) + b_j + e), 1, 5),   b_j ~ N(0, bias_sd),  e ~ N(0, s_j)

where q_d is a fixed function of the video's MEASURED metrics (see `true_quality`):

    visual_quality      1 + 4·clip((visual_quality composite − 0.4) / 0.5)
    temporal_coherence  1 + 4·clip((temporal_coherence composite − 0.1) / 0.8)
    factual_accuracy    1 + 4·factual_accuracy composite when OCR measured it; with OCR off
                        (--small) a legibility stand-in from the rendered text's size and
                        contrast: 1 + 4·clip(contrast·min(scale, 1.5)/1.5 / 0.8)
    content_relevance   3.8 (the renderer always shows the prompt's key points)
    overall_satisfaction 0.35·visual + 0.35·temporal + 0.2·factual + 0.1·content

Reviewers also file issue reports when a property is bad (grain/noise → visual_artifact,
low temporal coherence → flicker, low sharpness → blur, illegible text → text_error) and
compare a candidate and a control video of the same prompt blind while a canary runs.

Run it on a scratch database: it adds a deliberately mediocre starting revision (draft
variant, heavy grain, cut transitions, a fast camera, small low-contrast text) and makes it
active. With --baseline the starting configuration is also rated, fixed, with the same number
of ratings, and both are printed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.test import override_settings

from generation.models import ConfigRevision, Generation, MetricValue
from generation.params import validate_params
from generation.selectors import revision_active
from generation.services import (
    generation_request,
    generation_run,
    metrics_compute,
    revision_approve_and_activate,
    revision_create,
    revision_transition,
)
from improvements.analysis import analysis_compute, overall_scores
from improvements.criteria import criteria_resolve
from improvements.models import Experiment
from improvements.services import improvement_check
from reviews.models import Comparison, IssueReport, Rating
from reviews.services import IssueInput, comparison_record, review_create

PROMPTS = (
    "A policy briefing on renewable energy initiatives",
    "Quarterly budget review for the city council",
    "How the new bus network changes your commute",
    "Three facts about the regional water supply",
    "An update on school meal programmes",
    "What the housing report says about rents",
)
MEDIOCRE = {
    "model_variant": "draft",
    "grain": 0.15,
    "transition_style": "cut",
    "transition_seconds": 0.1,
    "camera_speed": 2.0,
    "text_scale": 0.7,
    "text_contrast": 0.3,
    "preset": "ultrafast",
}
SMALL = {"width": 192, "height": 108, "fps": 10, "seconds_per_scene": 0.75}
NORMAL = {"width": 320, "height": 180, "fps": 12, "seconds_per_scene": 1.5}
DIMENSIONS = (
    "visual_quality",
    "temporal_coherence",
    "content_relevance",
    "factual_accuracy",
    "overall_satisfaction",
)


def _unit(x: float) -> float:
    return float(min(max(x, 0.0), 1.0))


def true_quality(metrics: dict[str, float | None], params: dict[str, Any]) -> dict[str, float]:
    """What a perfectly calibrated reviewer would rate, from the video's measured metrics."""
    visual = 1 + 4 * _unit(((metrics.get("visual_quality") or 0.0) - 0.4) / 0.5)
    temporal = 1 + 4 * _unit(((metrics.get("temporal_coherence") or 0.0) - 0.1) / 0.8)
    if metrics.get("factual_accuracy") is not None:
        factual = 1 + 4 * _unit(metrics["factual_accuracy"])
    else:
        legibility = params["text_contrast"] * min(params["text_scale"], 1.5) / 1.5
        factual = 1 + 4 * _unit(legibility / 0.8)
    content = 3.8
    overall = 0.35 * visual + 0.35 * temporal + 0.2 * factual + 0.1 * content
    return {
        "visual_quality": visual,
        "temporal_coherence": temporal,
        "factual_accuracy": factual,
        "content_relevance": content,
        "overall_satisfaction": overall,
    }


def issue_probabilities(metrics: dict[str, float | None], quality: dict[str, float]) -> dict:
    """Chance that a reviewer reports each issue category for this video."""
    return {
        "visual_artifact": 0.9 * _unit(((metrics.get("noise_sigma") or 0.0) - 4) / 12),
        "flicker": 0.9 * _unit((0.5 - (metrics.get("temporal_coherence") or 0.0)) / 0.4),
        "blur": 0.9 * _unit((0.5 - (metrics.get("visual_quality") or 0.0)) / 0.3),
        "text_error": 0.9 * _unit((2.5 - quality["factual_accuracy"]) / 2.0),
    }


@dataclass
class Reviewer:
    user: Any
    bias: float
    noise: float


@dataclass
class Rated:
    generation: Generation
    quality: dict[str, float]


class Simulation:
    def __init__(self, *, reviewers: int, seed: int, small: bool, share: float):
        self.rng = np.random.default_rng(seed)
        self.small = small
        self.share = share
        self.ratings = 0
        self.prompt_index = 0
        users = get_user_model()
        self.panel = []
        for j in range(reviewers):
            user, created = users.objects.get_or_create(username=f"sim-reviewer-{seed}-{j}")
            if created:
                user.set_unusable_password()
                user.save(update_fields=["password"])
            self.panel.append(
                Reviewer(user, float(self.rng.normal(0, 0.4)), float(self.rng.uniform(0.3, 0.6)))
            )

    def start_revision(self) -> ConfigRevision:
        params = validate_params({**(SMALL if self.small else NORMAL), **MEDIOCRE})
        revision = revision_create(
            params=params, rationale="simulation start: a deliberately mediocre configuration"
        )
        return revision_approve_and_activate(revision=revision, note="simulate_reviews start")

    def generate(self, revision: ConfigRevision | None = None) -> Rated | None:
        prompt = PROMPTS[self.prompt_index % len(PROMPTS)]
        self.prompt_index += 1
        generation, _ = generation_request(prompt=prompt, revision=revision, enqueue=False)
        generation = generation_run(generation_id=str(generation.id))
        if generation.status != Generation.Status.SUCCEEDED:
            return None
        metrics_compute(generation_id=str(generation.id))
        metrics = dict(
            MetricValue.objects.filter(
                generation=generation, source=MetricValue.Source.SERVER
            ).values_list("name", "value")
        )
        quality = true_quality(metrics, generation.params)
        self._review(generation, metrics, quality)
        return Rated(generation, quality)

    def _review(self, generation: Generation, metrics: dict, quality: dict[str, float]) -> None:
        chances = issue_probabilities(metrics, quality)
        duration = generation.duration_s or 1.0
        for reviewer in self.panel:
            noise = self.rng.normal(0, reviewer.noise, size=len(DIMENSIONS))
            ratings = {
                d: int(min(max(np.floor(quality[d] + reviewer.bias + e + 0.5), 1), 5))
                for d, e in zip(DIMENSIONS, noise, strict=True)
            }
            issues = []
            for category, p in chances.items():
                if self.rng.random() < p:
                    start = float(self.rng.uniform(0, duration * 0.8))
                    issues.append(IssueInput(category, start, min(start + 0.2, duration)))
            review_create(
                reviewer=reviewer.user, generation=generation, ratings=ratings, issues=issues
            )
            self.ratings += len(ratings)

    def compare(self, candidate: list[Rated], control: list[Rated]) -> None:
        """Blind comparisons of same-prompt videos from the two arms."""
        by_prompt = {r.generation.prompt: r for r in control}
        for rated in candidate:
            other = by_prompt.get(rated.generation.prompt)
            if other is None:
                continue
            reviewer = self.panel[int(self.rng.integers(len(self.panel)))]
            a, b = (rated, other) if self.rng.random() < 0.5 else (other, rated)
            gap = (
                a.quality["overall_satisfaction"]
                - b.quality["overall_satisfaction"]
                + self.rng.normal(0, reviewer.noise)
            )
            winner = "tie" if abs(gap) < 0.2 else ("left" if gap > 0 else "right")
            comparison_record(
                reviewer=reviewer.user, left=a.generation, right=b.generation, winner=winner
            )


def _score_text(score: dict[str, Any] | None) -> str:
    if score is None:
        return "unrated"
    interval = ""
    if score["ci_low"] is not None:
        interval = f" [{score['ci_low']:.2f}, {score['ci_high']:.2f}]"
    return f"{score['mean']:.2f}{interval} (n={score['n']})"


class Command(BaseCommand):
    help = "Simulate reviewers driving rounds of generate → rate → improve → canary → decide."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--rounds", type=int, default=8)
        parser.add_argument("--generations-per-round", type=int, default=12)
        parser.add_argument("--reviewers", type=int, default=6)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--canary-share", type=float, default=0.5)
        parser.add_argument(
            "--baseline",
            action="store_true",
            help="also rate the starting configuration, fixed, with the same number of ratings",
        )
        parser.add_argument("--small", action="store_true", help="tiny videos, OCR off")

    def handle(self, *args: Any, **options: Any) -> None:
        from feedbackloop.celery import app

        eager = app.conf.task_always_eager
        # In-process: the metrics hook after a render runs here instead of on a broker.
        app.conf.task_always_eager = True
        try:
            if options["small"]:
                with override_settings(METRICS_OCR_ENABLED=False):
                    summary = self.simulate(**options)
            else:
                summary = self.simulate(**options)
        finally:
            app.conf.task_always_eager = eager
        self.stdout.write("summary: " + json.dumps(summary))

    def simulate(self, **options: Any) -> dict[str, Any]:
        from improvements.experiments import experiment_start, experiments_evaluate

        sim = Simulation(
            reviewers=options["reviewers"],
            seed=options["seed"],
            small=options["small"],
            share=options["canary_share"],
        )
        start = sim.start_revision()
        self.stdout.write(f"start: r{start.number} {json.dumps(MEDIOCRE)}")
        feedback = criteria_resolve(require_approval=True)
        generations = 0
        promoted_at_ratings: int | None = None
        for round_no in range(1, options["rounds"] + 1):
            arms: dict[str, list[Rated]] = {"candidate": [], "control": []}
            for _ in range(options["generations_per_round"]):
                rated = sim.generate()
                generations += 1
                if rated is not None and rated.generation.experiment_arm:
                    arms[rated.generation.experiment_arm].append(rated)
            sim.compare(arms["candidate"], arms["control"])
            events = []
            for decision in experiments_evaluate():
                experiment = decision.experiment
                events.append(
                    f"canary r{experiment.candidate.number}: {decision.kind} "
                    f"(n {decision.n_candidate}/{decision.n_control})"
                )
                if decision.kind == "promote":
                    promoted_at_ratings = sim.ratings
            proposals = improvement_check(
                min_feedback=feedback.min_feedback_for_analysis,
                require_approval=True,
                criteria=feedback.improvement_criteria,
                trigger="manual",
            )
            for proposal in proposals:
                if not Experiment.objects.filter(status=Experiment.Status.RUNNING).exists():
                    experiment_start(revision=proposal, share=sim.share)
                    events.append(
                        f"proposed r{proposal.number} ({proposal.evidence.get('improver')}: "
                        f"{', '.join(proposal.evidence.get('diff', {}))}) → canary"
                    )
            active = revision_active()
            scores = overall_scores(analysis_compute())
            self.stdout.write(
                f"round {round_no}: active r{active.number} overall "
                f"{_score_text(scores.get(active.number))}; ratings {sim.ratings}"
                + (f"; {'; '.join(events)}" if events else "")
            )
        loop_ratings = sim.ratings
        final = revision_active()
        # A canary still running at the end is stopped: the comparison is of active revisions.
        baseline_number = None
        if options["baseline"]:
            baseline = revision_create(
                params=dict(start.params),
                rationale="simulation baseline: the starting configuration, kept fixed",
            )
            baseline_number = baseline.number
            for _ in range(generations):
                sim.generate(revision=baseline)
            revision_transition(
                revision=baseline, to_status=ConfigRevision.Status.REJECTED, note="baseline only"
            )
        scores = overall_scores(analysis_compute())
        summary = {
            "start": {"revision": start.number, **(scores.get(start.number) or {})},
            "final": {"revision": final.number, **(scores.get(final.number) or {})},
            "loop_ratings": loop_ratings,
            "ratings_until_last_promotion": promoted_at_ratings,
            "generations": generations,
            "reviews": Rating.objects.values("review").distinct().count(),
            "issue_reports": IssueReport.objects.count(),
            "comparisons": Comparison.objects.count(),
        }
        self.stdout.write(
            f"start r{start.number}: {_score_text(scores.get(start.number))}; final active "
            f"r{final.number}: {_score_text(scores.get(final.number))}; {loop_ratings} ratings"
            + (
                f", last promotion after {promoted_at_ratings} ratings"
                if promoted_at_ratings
                else ", nothing promoted"
            )
        )
        if baseline_number is not None:
            summary["baseline"] = {"revision": baseline_number, **scores[baseline_number]}
            self.stdout.write(
                f"baseline (fixed start config, {sim.ratings - loop_ratings} ratings): "
                f"r{baseline_number}: {_score_text(scores.get(baseline_number))}"
            )
        return summary
