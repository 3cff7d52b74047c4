"""Proposals: targeted fixes with their evidence, Thompson sampling, Optuna, admin overrides."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from generation.models import ConfigRevision, Generation, MetricValue
from generation.params import DEFAULT_PARAMS, PARAM_SCHEMA, validate_params
from generation.services import revision_ensure_active
from improvements.analysis import analysis_compute
from improvements.criteria import criteria_resolve
from improvements.models import AnalysisRun, ImproverSettings
from improvements.proposals import Proposal, optuna_suggest, proposal_choose
from improvements.services import improvement_check
from reviews.models import IssueReport, Rating, RatingDimension, Review
from tests.factories import FinishedGenerationFactory, RevisionFactory

pytestmark = pytest.mark.django_db

START = {**DEFAULT_PARAMS, "model_variant": "draft", "preset": "veryfast"}


@pytest.fixture
def panel(db):
    # no password: hashing one takes longer than these tests
    return [get_user_model().objects.create(username=f"judge{j}") for j in range(6)]


@pytest.fixture
def active(db):
    return revision_ensure_active(params=START)


def rate(revision, panel, *, n_gens=4, values=None, issue=None, seconds=1.0, metric=None, rng=None):
    """n_gens generations of `revision`, each reviewed by the whole panel.

    values: dimension slug -> mean rating (reviewers spread ±1 around it); issue: a category
    every review reports; metric: (name, value) stored for every generation.
    """
    rng = rng or np.random.default_rng(0)
    values = values or {"overall_satisfaction": 5}
    dims = {d.slug: d for d in RatingDimension.objects.filter(slug__in=list(values))}
    ratings = []
    for _ in range(n_gens):
        gen = FinishedGenerationFactory(revision=revision, generation_seconds=seconds)
        if metric:
            MetricValue.objects.create(generation=gen, name=metric[0], value=metric[1])
        for reviewer in panel:
            review = Review.objects.create(reviewer=reviewer, generation=gen)
            for slug, mean in values.items():
                value = int(np.clip(round(mean + rng.integers(-1, 2) * (mean not in (1, 5))), 1, 5))
                ratings.append(Rating(review=review, dimension=dims[slug], value=value))
            if issue:
                IssueReport.objects.create(
                    review=review, generation=gen, category=issue, start_s=0.5, end_s=1.5
                )
    Rating.objects.bulk_create(ratings)


def choose(active, **criteria_overrides):
    criteria = criteria_resolve().improvement_criteria
    if criteria_overrides:
        from dataclasses import replace

        criteria = replace(criteria, **criteria_overrides)
    active.refresh_from_db()
    return proposal_choose(
        snapshot=analysis_compute(criteria=criteria), active=active, criteria=criteria
    )


def assert_complete(proposal: Proposal) -> None:
    """Every proposal carries a rationale, evidence with intervals, a diff and an impact."""
    assert len(proposal.rationale) > 40
    assert proposal.diff and all(len(v) == 2 for v in proposal.diff.values())
    validate_params(proposal.params)
    impact = proposal.predicted_impact
    assert {"dimension", "expected_change", "ci_low", "ci_high", "basis"} <= set(impact)
    assert impact["ci_low"] <= impact["expected_change"] <= impact["ci_high"]
    text = repr(proposal.evidence)
    assert "ci" in text, "the evidence must carry an interval"


@pytest.mark.parametrize(
    ("category", "changed", "words"),
    [
        ("flicker", {"transition_seconds", "camera_speed"}, "flicker"),
        ("blur", {"model_variant"}, "render scale"),
        ("text_error", {"text_scale", "text_contrast", "crf"}, "text"),
        ("visual_artifact", {"crf", "grain", "denoise"}, "artifact"),
    ],
)
def test_frequent_issue_reports_map_to_their_fix_with_the_evidence(
    active, panel, category, changed, words
):
    rate(active, panel, issue=category)
    proposal, _ = choose(active)
    assert proposal.kind == "targeted_fix"
    assert set(proposal.diff) == changed
    assert proposal.evidence["category"] == category and proposal.evidence["count"] == 24
    assert proposal.evidence["rate"] == 1.0
    low, high = proposal.evidence["rate_ci"]
    assert low < 1.0 < high
    assert words in proposal.rationale and "24 of 24 reviews of r1" in proposal.rationale
    assert_complete(proposal)


def test_flicker_fix_cites_low_temporal_coherence_rating_and_metric(active, panel):
    rate(
        active,
        panel,
        issue="flicker",
        values={"temporal_coherence": 2, "overall_satisfaction": 4},
        metric=("temporal_coherence", 0.2),
    )
    proposal, _ = choose(active)
    assert proposal.evidence["dimension"]["temporal_coherence"]["mean"] < 2.5
    assert proposal.evidence["metric"]["temporal_coherence"]["mean"] == 0.2
    assert "temporal coherence composite is 0.20" in proposal.rationale


def test_weakest_dimension_below_target_gets_a_fix_with_its_corrected_mean(active, panel):
    rate(
        active,
        panel,
        values={"factual_accuracy": 2, "visual_quality": 3, "overall_satisfaction": 4},
    )
    proposal, _ = choose(active)
    assert proposal.evidence["dimension"] == "factual_accuracy"
    assert proposal.evidence["n"] == 24 and proposal.evidence["mean"] == pytest.approx(2, abs=0.3)
    ci = proposal.evidence["ci95"]
    assert ci[0] < proposal.evidence["mean"] < ci[1]
    assert set(proposal.diff) == {"text_scale", "text_contrast", "crf"}
    assert "factual accuracy is the weakest dimension of r1" in proposal.rationale
    assert_complete(proposal)


def test_metric_deficit_alone_triggers_a_fix(active, panel):
    rate(active, panel, metric=("temporal_coherence", 0.25))
    proposal, _ = choose(active)
    assert proposal.evidence["trigger"] == "metric_deficit"
    assert proposal.evidence["metric"] == "temporal_coherence" and proposal.evidence["n"] == 4
    assert {"transition_seconds", "camera_speed"} <= set(proposal.diff)
    assert_complete(proposal)


def test_slow_generation_gets_a_faster_preset(active, panel):
    fast = RevisionFactory(params={**START, "crf": 30}, status=ConfigRevision.Status.RETIRED)
    rate(fast, panel, n_gens=5, seconds=2.0)
    rate(active, panel, n_gens=5, seconds=10.0)
    proposal, _ = choose(active)
    assert proposal.evidence["trigger"] == "slow_generation"
    assert proposal.diff == {"preset": ["veryfast", "ultrafast"]}
    assert proposal.predicted_impact["dimension"] == "generation_seconds"
    assert_complete(proposal)


def test_a_fix_an_existing_revision_already_has_is_not_proposed_again(active, panel):
    rate(active, panel, values={"factual_accuracy": 2, "overall_satisfaction": 4})
    first, _ = choose(active)
    RevisionFactory(params=first.params, status=ConfigRevision.Status.ROLLED_BACK)
    second, why = choose(active, min_ratings_per_arm=1000)
    assert second is None or second.params != first.params
    assert second is None and "exploration waits" in why


def test_thompson_picks_the_clearly_better_variant(active, panel):
    for variant, mean in (("standard", 4.5), ("hq", 3.5)):
        other = RevisionFactory(
            params={**START, "model_variant": variant, "crf": 20},
            status=ConfigRevision.Status.RETIRED,
        )
        rate(other, panel, n_gens=8, values={"overall_satisfaction": mean})
    rate(active, panel, n_gens=8, values={"overall_satisfaction": 4})
    proposal, _ = choose(active, target_rating=3.0)
    assert proposal.kind == "thompson"
    assert proposal.diff == {"model_variant": ["draft", "standard"]}
    p_best = {v["variant"]: v["p_best"] for v in proposal.evidence["variants"]}
    assert p_best["standard"] > 0.9
    assert proposal.predicted_impact["expected_change"] == pytest.approx(0.5, abs=0.2)
    assert_complete(proposal)


def test_optuna_proposes_new_valid_params_when_the_variant_is_settled(db, panel):
    active = revision_ensure_active(params={**START, "model_variant": "hq"})
    for variant, mean in (("standard", 2.0), ("draft", 2.0)):
        other = RevisionFactory(
            params={**START, "model_variant": variant}, status=ConfigRevision.Status.RETIRED
        )
        rate(other, panel, n_gens=8, values={"overall_satisfaction": mean})
    rate(active, panel, n_gens=8, values={"overall_satisfaction": 4})
    proposal, _ = choose(active, target_rating=3.0)
    assert proposal.kind == "optuna"
    assert proposal.params["model_variant"] == "hq"
    assert {"width", "height", "fps", "seed", "model_variant"}.isdisjoint(proposal.diff)
    assert proposal.evidence["trials"] == 3
    assert_complete(proposal)


def test_optuna_is_deterministic_within_the_schema_and_never_repeats_a_revision():
    history = [
        (validate_params({**START, "crf": c, "grain": g}), score, 1.0)
        for c, g, score in ((18, 0.0, 4.0), (30, 0.2, 2.5), (23, 0.1, 3.2), (40, 0.3, 1.5))
    ]
    seen: set[str] = set()

    def is_new(params):
        return repr(sorted(params.items())) not in seen

    a, n = optuna_suggest(history=history, base=START, seconds_budget=1.5, seed=3, is_new=is_new)
    b, _ = optuna_suggest(history=history, base=START, seconds_budget=1.5, seed=3, is_new=is_new)
    assert n == 4 and a == b
    for key, value in a.items():
        PARAM_SCHEMA[key].coerce(key, value)
    seen.add(repr(sorted(a.items())))
    c, _ = optuna_suggest(history=history, base=START, seconds_budget=1.5, seed=3, is_new=is_new)
    assert c is not None and c != a


def test_admin_override_of_the_target_changes_what_is_weak(active, panel):
    rate(active, panel, values={"visual_quality": 3, "overall_satisfaction": 4})
    proposal, _ = choose(active)
    assert proposal is not None and proposal.evidence["dimension"] == "visual_quality"
    ImproverSettings.objects.create(target_rating=2.5, min_ratings_per_arm=1000)
    assert criteria_resolve().improvement_criteria.target_rating == 2.5
    proposal, why = choose(active)
    assert proposal is None and "no targeted fix" in why


def test_admin_override_of_the_feedback_threshold_and_criteria_reach_the_analysis(active, panel):
    rate(active, panel, n_gens=1, values={"visual_quality": 2})  # 6 ratings
    ImproverSettings.objects.create(min_feedback_for_analysis=10, min_ratings_per_arm=7, alpha=0.1)

    def run():
        feedback = criteria_resolve()
        return improvement_check(
            min_feedback=feedback.min_feedback_for_analysis,
            require_approval=True,
            criteria=feedback.improvement_criteria,
        )

    assert run() == [] and AnalysisRun.objects.count() == 0
    ImproverSettings.objects.update(min_feedback_for_analysis=5)
    [proposal] = run()
    assert proposal.status == "proposed" and proposal.source == "improver"
    snapshot = AnalysisRun.objects.get().snapshot
    assert snapshot["criteria"]["min_ratings_per_arm"] == 7 and snapshot["criteria"]["alpha"] == 0.1
    assert snapshot["corrected"]["visual_quality"][0]["n"] == 6
    assert (
        proposal.evidence["improver"] == "targeted_fix" and proposal.predicted_impact["ci_high"] > 0
    )


def test_no_second_proposal_while_one_for_the_active_revision_is_pending(active, panel):
    rate(active, panel, n_gens=1, values={"visual_quality": 2})
    criteria = criteria_resolve().improvement_criteria
    [first] = improvement_check(min_feedback=1, require_approval=True, criteria=criteria)
    rate(active, panel, n_gens=1, values={"temporal_coherence": 1})
    assert improvement_check(min_feedback=1, require_approval=True, criteria=criteria) == []
    run = AnalysisRun.objects.order_by("-id").first()
    assert "already awaiting a decision" in run.skipped_reason
    assert ConfigRevision.objects.filter(status="proposed").get() == first
    assert Generation.objects.count() == 2
