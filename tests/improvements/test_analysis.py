"""The analysis snapshot on a hand-built dataset with known reviewer offsets and qualities."""

from __future__ import annotations

import json

import numpy as np
import pytest
from django.contrib.auth import get_user_model

from generation.models import Generation, MetricValue
from improvements.analysis import analysis_compute as analysis_of
from improvements.analysis import overall_scores
from pipelines.builtin.declaration import DEFAULT_PARAMS
from reviews.models import Comparison, IssueReport, Rating, RatingDimension, Review
from tests.factories import FinishedGenerationFactory, PipelineFactory, RevisionFactory

pytestmark = pytest.mark.django_db

TRUE = {1: 2.5, 2: 3.5}  # revision number -> true mean rating
OFFSETS = [-0.8] * 4 + [0.8] * 4 + [0.0] * 4  # harsh, kind, neutral reviewers
SNAPSHOT_KEYS = {
    "computed_at",
    "ratings",
    "reviews",
    "comparisons",
    "revisions",
    "corrected",
    "agreement",
    "bradley_terry",
    "issue_rates",
    "correlations",
    "generation_seconds",
}


@pytest.fixture
def dataset(db):
    """Revision 1 is rated mostly by kind reviewers, revision 2 mostly by harsh ones, so raw
    means understate the gap between them; per-generation quality drives a metric."""
    rng = np.random.default_rng(7)
    revisions = {
        n: RevisionFactory(number=n, params={**DEFAULT_PARAMS, "crf": 20 + n}) for n in TRUE
    }
    # no password: hashing one takes longer than the whole analysis
    reviewers = [get_user_model().objects.create(username=f"panel{j}") for j in range(len(OFFSETS))]
    dims = {
        d.slug: d
        for d in RatingDimension.objects.filter(
            slug__in=["overall_satisfaction", "temporal_coherence"]
        )
    }
    kind, harsh, neutral = range(4, 8), range(0, 4), range(8, 12)
    gens: dict[int, list[Generation]] = {1: [], 2: []}
    ratings, metrics = [], []
    for number, truth in TRUE.items():
        favoured = kind if number == 1 else harsh
        other = harsh if number == 1 else kind
        for g in range(40):
            gen = FinishedGenerationFactory(
                revision=revisions[number], generation_seconds=1.0 * number
            )
            gens[number].append(gen)
            quality = truth + rng.normal(0, 0.5)
            metrics += [
                MetricValue(
                    generation=gen,
                    name="temporal_coherence",
                    value=quality / 5 + rng.normal(0, 0.02),
                ),
                MetricValue(generation=gen, name="flicker", value=5 - quality + rng.normal(0, 0.1)),
            ]
            pool = list(favoured) * 6 + list(other) + list(neutral) * 3
            chosen = rng.choice(pool, size=3, replace=False) if len(set(pool)) >= 3 else pool[:3]
            chosen = list(dict.fromkeys(int(c) for c in chosen))
            for j in chosen:
                review = Review.objects.create(reviewer=reviewers[j], generation=gen)
                for dim in dims.values():
                    value = int(np.clip(np.rint(quality + OFFSETS[j] + rng.normal(0, 0.4)), 1, 5))
                    ratings.append(Rating(review=review, dimension=dim, value=value))
                if number == 1 and g % 4 == 0:
                    IssueReport.objects.create(
                        review=review, generation=gen, category="flicker", start_s=1, end_s=2
                    )
    Rating.objects.bulk_create(ratings)
    MetricValue.objects.bulk_create(metrics)
    FinishedGenerationFactory(revision=revisions[2], status=Generation.Status.FAILED, video="")
    judge = reviewers[-1]
    outcomes = ["right"] * 15 + ["left"] * 3 + ["tie"] * 2
    for k, winner in enumerate(outcomes):
        Comparison.objects.create(reviewer=judge, left=gens[1][k], right=gens[2][k], winner=winner)
    # same-revision comparisons say nothing about revisions: they are skipped
    Comparison.objects.create(reviewer=judge, left=gens[1][30], right=gens[1][31], winner="left")
    return revisions


def analysis_compute() -> dict:
    """The builtin pipeline's analysis (the dataset's pipeline)."""
    return analysis_of(pipeline=PipelineFactory())


def _row(rows, number):
    return next(r for r in rows if r["revision"] == number)


def test_snapshot_has_the_documented_keys_and_is_strict_json(dataset):
    snapshot = analysis_compute()
    assert set(snapshot) >= SNAPSHOT_KEYS
    json.dumps(snapshot, allow_nan=False)
    assert snapshot["reviews"] == Review.objects.count()
    assert snapshot["ratings"] == Rating.objects.count()
    assert snapshot["comparisons"] == 20
    assert [r["number"] for r in snapshot["revisions"]] == [1, 2]


def test_corrected_means_remove_known_reviewer_offsets(dataset):
    snapshot = analysis_compute()
    for slug in ("overall_satisfaction", "temporal_coherence"):
        one, two = (_row(snapshot["corrected"][slug], n) for n in (1, 2))
        for row, number in ((one, 1), (two, 2)):
            assert row["ci_low"] < row["mean"] < row["ci_high"]
            assert abs(row["mean"] - TRUE[number]) < 0.25, (slug, row)
            assert row["n_reviewers"] >= 8
        raw_gap = two["raw_mean"] - one["raw_mean"]
        corrected_gap = two["mean"] - one["mean"]
        # kind reviewers inflate r1, harsh ones deflate r2: the raw gap is too small
        assert raw_gap < 0.6 < corrected_gap
        assert abs(corrected_gap - 1.0) < 0.3


def test_agreement_is_reported_per_dimension(dataset):
    agreement = analysis_compute()["agreement"]
    assert set(agreement) == {"overall_satisfaction", "temporal_coherence"}
    assert all(alpha is not None and 0 < alpha < 1 for alpha in agreement.values())


def test_bradley_terry_ranks_the_revision_that_wins_comparisons_first(dataset):
    bt = analysis_compute()["bradley_terry"]
    assert [r["revision"] for r in bt] == [2, 1]
    assert bt[0]["strength"] > bt[1]["strength"]
    assert bt[0]["ci_low"] < bt[0]["strength"] < bt[0]["ci_high"]
    assert bt[0]["comparisons"] == 20  # the same-revision pair is not counted


def test_issue_rates_are_shares_of_reviews_with_a_wilson_interval_inside_0_1(dataset):
    rates = analysis_compute()["issue_rates"]
    [flicker] = [r for r in rates if r["category"] == "flicker"]
    reviews = Review.objects.filter(generation__revision__number=1).count()
    reporting = IssueReport.objects.values("review").distinct().count()
    assert flicker["revision"] == 1 and flicker["reviews"] == reviews
    assert flicker["count"] == IssueReport.objects.count()
    assert flicker["reviews_reporting"] == reporting
    assert flicker["rate"] == pytest.approx(reporting / reviews, abs=1e-4)
    assert 0.0 <= flicker["rate_low"] <= flicker["rate"] <= flicker["rate_high"] <= 1.0


def test_correlations_have_the_right_sign(dataset):
    rows = {(r["metric"], r["dimension"]): r for r in analysis_compute()["correlations"]}
    good = rows[("temporal_coherence", "temporal_coherence")]
    bad = rows[("flicker", "temporal_coherence")]
    assert good["n"] == 80 and good["rho"] > 0.3 and good["p_value"] < 0.01
    assert bad["rho"] < -0.3


def test_generation_seconds_and_failure_rate_per_revision(dataset):
    rows = analysis_compute()["generation_seconds"]
    assert _row(rows, 1) == {"revision": 1, "mean": 1.0, "n": 40, "failure_rate": 0.0}
    two = _row(rows, 2)
    assert two["mean"] == 2.0 and two["failure_rate"] == pytest.approx(1 / 41, abs=1e-4)


def test_overall_scores_use_the_overall_dimension(dataset):
    scores = overall_scores(analysis_compute())
    assert scores[2]["mean"] > scores[1]["mean"]
    assert scores[1]["basis"] == "overall_satisfaction"


def test_another_pipelines_feedback_stays_out_of_the_snapshot(dataset):
    before = analysis_compute()
    other = PipelineFactory(slug="diffusers", name="Diffusers")
    revision = RevisionFactory(pipeline=other, number=1)
    judge = get_user_model().objects.get(username="panel0")
    for _ in range(3):
        generation = FinishedGenerationFactory(revision=revision)
        review = Review.objects.create(reviewer=judge, generation=generation)
        Rating.objects.create(
            review=review,
            dimension=RatingDimension.objects.get(slug="overall_satisfaction"),
            value=1,
        )
        IssueReport.objects.create(
            review=review, generation=generation, category="blur", start_s=0, end_s=1
        )
    after = analysis_compute()
    for key in ("ratings", "reviews", "comparisons", "corrected", "issue_rates", "revisions"):
        assert after[key] == before[key], key
    theirs = analysis_of(pipeline=other)
    assert theirs["pipeline"] == "diffusers" and theirs["ratings"] == theirs["reviews"] == 3
    assert [r["number"] for r in theirs["revisions"]] == [1]


def test_empty_database_gives_an_empty_but_valid_snapshot(db):
    snapshot = analysis_compute()
    assert set(snapshot) >= SNAPSHOT_KEYS
    assert (
        snapshot["ratings"] == 0 and snapshot["corrected"] == {} and snapshot["bradley_terry"] == []
    )
    json.dumps(snapshot, allow_nan=False)
