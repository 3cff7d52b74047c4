"""The analysis calibrates the metric composites on a pipeline's own bias-corrected ratings."""

from __future__ import annotations

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.template.defaultfilters import floatformat

from generation.models import MetricValue
from improvements.analysis import analysis_compute
from reviews.models import Rating, RatingDimension, Review
from tests.factories import FinishedGenerationFactory, RevisionFactory


def rated_generations(n: int, *, seed: int = 3) -> None:
    """n generations whose temporal rating follows their flicker (and jitter) metrics."""
    rng = np.random.default_rng(seed)
    revision = RevisionFactory(number=1)
    dimension = RatingDimension.objects.get(slug="temporal_coherence")
    reviewers = [get_user_model().objects.create(username=f"cal{j}") for j in range(4)]
    leniency = [-0.6, 0.0, 0.3, 0.6]
    ratings, metrics = [], []
    for _ in range(n):
        generation = FinishedGenerationFactory(revision=revision)
        flicker = rng.uniform(0.0, 2.0)
        quality = 4.6 - 1.5 * flicker + rng.normal(0, 0.15)
        metrics += [
            MetricValue(generation=generation, name="flicker", value=flicker, version=2),
            MetricValue(generation=generation, name="jitter", value=0.0, version=2),
        ]
        for j in rng.choice(4, size=2, replace=False):
            review = Review.objects.create(reviewer=reviewers[j], generation=generation)
            value = int(np.clip(np.rint(quality + leniency[j] + rng.normal(0, 0.3)), 1, 5))
            ratings.append(Rating(review=review, dimension=dimension, value=value))
    Rating.objects.bulk_create(ratings)
    MetricValue.objects.bulk_create(metrics)


@pytest.mark.django_db
def test_with_enough_ratings_the_learned_composite_reports_its_held_out_error():
    rated_generations(80)
    calibration = analysis_compute(pipeline=RevisionFactory._meta.model.objects.get().pipeline)[
        "calibration"
    ]
    model = calibration["temporal_coherence"]
    assert model["n"] == 80
    assert model["held_out_rmse"] is not None and model["mean_rmse"] is not None
    # the metric explains the ratings: far better than guessing the mean
    assert model["held_out_rmse"] < 0.7 * model["mean_rmse"]
    assert model["weights"]["flicker"] != 0


@pytest.mark.django_db
def test_with_too_few_ratings_the_defaults_stay_in_force():
    rated_generations(12)
    calibration = analysis_compute(pipeline=RevisionFactory._meta.model.objects.get().pipeline)[
        "calibration"
    ]
    model = calibration["temporal_coherence"]
    assert model["use_learned"] is False and model["reason"]


@pytest.mark.django_db
def test_the_dashboard_shows_the_calibration_and_its_held_out_error(client):
    from improvements.models import AnalysisRun

    rated_generations(80)
    pipeline = RevisionFactory._meta.model.objects.get().pipeline
    snapshot = analysis_compute(pipeline=pipeline)
    AnalysisRun.objects.create(pipeline=pipeline, snapshot=snapshot)
    client.force_login(get_user_model().objects.create(username="boss", is_staff=True))
    page = client.get("/dashboard/").content.decode()
    assert "Metrics calibrated on these ratings" in page
    held_out = snapshot["calibration"]["temporal_coherence"]["held_out_rmse"]
    assert floatformat(held_out, 3) in page
