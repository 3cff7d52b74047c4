"""FeedbackIntegration and FeedbackCollector: what the design document asks of them, and the bugs
the loop's tryout found in them (dict issues, named reviewers, numpy ratings, one config)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import yaml
from django.utils import timezone

from feedbackloop.errors import Conflict, InvalidInput, NotFound
from generation.models import MetricValue
from improvements.models import Experiment
from pipelines.services.revisions import revision_create
from reviews.models import Comparison, FeedbackSubmission, IssueReport, Review
from seed.video_generator import VideoGenerator
from tests.factories import FinishedGenerationFactory

pytestmark = pytest.mark.django_db
DEFAULT = Path(__file__).resolve().parents[2] / "config" / "default_config.yaml"
RATINGS = {"visual_quality": 4, "content_relevance": 5, "overall_satisfaction": 4}


@pytest.fixture
def generator(tmp_path) -> VideoGenerator:
    data = yaml.safe_load(DEFAULT.read_text())
    data["feedback"]["improvement_criteria"].update(alpha=0.01, canary_share=0.3)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return VideoGenerator(config_path=path)


@pytest.fixture
def finished(generator):
    active = generator.pipeline.revisions.get(status="active")
    return [FinishedGenerationFactory(revision=active, params=active.params) for _ in range(3)]


def test_issue_reports_may_be_plain_dicts_as_in_the_usage_example(generator, finished):
    review_id = generator.feedback_integration.record_human_feedback(
        generation_id=str(finished[0].id),
        ratings=RATINGS,
        issues=[{"category": "blur", "start_s": 0, "end_s": 0.5}],
    )
    issue = IssueReport.objects.get(review_id=review_id)
    assert (issue.category, issue.start_s, issue.end_s) == ("blur", 0.0, 0.5)


@pytest.mark.parametrize(
    "issue",
    [
        {"category": "blur", "start_s": 0},  # no end
        {"category": "smell", "start_s": 0, "end_s": 1},
        {"category": "blur", "start_s": 2, "end_s": 1},
        {"category": "blur", "start_s": 0, "end_s": 1, "severity": "huge"},
        "blur at 0 s",
    ],
)
def test_an_invalid_issue_dict_is_refused_and_nothing_is_written(generator, finished, issue):
    with pytest.raises(InvalidInput):
        generator.feedback_integration.record_human_feedback(
            generation_id=str(finished[0].id), ratings=RATINGS, issues=[issue]
        )
    assert not Review.objects.exists() and not IssueReport.objects.exists()


def test_named_reviewers_each_review_the_same_generation(generator, finished):
    integration = generator.feedback_integration
    gid = str(finished[0].id)
    integration.record_human_feedback(generation_id=gid, ratings=RATINGS, reviewer="ana")
    integration.record_human_feedback(generation_id=gid, ratings=RATINGS, reviewer="ben")
    assert sorted(Review.objects.values_list("reviewer__username", flat=True)) == ["ana", "ben"]
    with pytest.raises(Conflict):  # the same person twice is still one review
        integration.record_human_feedback(generation_id=gid, ratings=RATINGS, reviewer="ana")


def test_numpy_integer_ratings_are_accepted(generator, finished):
    ratings = {k: np.int64(v) for k, v in RATINGS.items()}
    review_id = generator.feedback_integration.record_human_feedback(
        generation_id=str(finished[0].id), ratings=ratings
    )
    values = dict(Review.objects.get(pk=review_id).ratings.values_list("dimension__slug", "value"))
    assert values == RATINGS


@pytest.mark.parametrize("value", [4.5, True, "4", np.float64(3.2), 6])
def test_a_rating_that_is_not_an_integer_from_1_to_5_is_refused(generator, finished, value):
    with pytest.raises(InvalidInput, match="integer from 1 to 5"):
        generator.feedback_integration.record_human_feedback(
            generation_id=str(finished[0].id), ratings={"visual_quality": value}
        )
    assert not Review.objects.exists()


def test_the_generators_own_config_sets_the_criteria_of_its_experiments(generator, finished):
    # FEEDBACKLOOP_CONFIG (the site's file) says alpha 0.05; this generator's file says 0.01.
    pipeline = generator.pipeline
    active = pipeline.revisions.get(status="active")
    proposal = revision_create(
        pipeline=pipeline,
        params={**active.params, "crf": 20},
        parent=active,
        source="improver",
    )
    opened = generator.feedback_integration.improver.approve(proposal.number)
    assert opened["opened"] == [proposal.number]
    experiment = Experiment.objects.get(pipeline=pipeline)
    assert experiment.alpha == 0.01
    assert experiment.arms.get().share == pytest.approx(0.3)


def test_comparisons_are_recorded_from_python(generator, finished):
    left, right = (str(g.id) for g in finished[:2])
    comparison_id = generator.feedback_integration.record_comparison(
        left, right, "left", dimensions={"visual_quality": "right"}, reviewer="cleo"
    )
    comparison = Comparison.objects.get(pk=comparison_id)
    assert comparison.winner == "left" and comparison.reviewer.username == "cleo"
    assert comparison.dimension_winners.get().winner == "right"
    with pytest.raises(InvalidInput):
        generator.feedback_integration.record_comparison(left, right, "both")


def test_automated_metrics_from_outside_sit_beside_the_servers(generator, finished):
    gid = str(finished[0].id)
    MetricValue.objects.create(generation=finished[0], name="sharpness", value=10.0)
    stored = generator.feedback_integration.record_automated_metrics(gid, {"clip_score": 0.31})
    assert stored == {"clip_score": 0.31}
    metrics = generator.feedback_integration.get_automated_metrics(gid)
    assert metrics == {"sharpness": 10.0, "worker:clip_score": 0.31}


def test_feedback_history_filters_by_generation_reviewer_dimension_and_date(generator, finished):
    integration = generator.feedback_integration
    a, b = (str(g.id) for g in finished[:2])
    integration.record_human_feedback(generation_id=a, ratings=RATINGS, reviewer="ana")
    integration.record_human_feedback(
        generation_id=b, ratings={"visual_quality": 2}, reviewer="ben", comments="soft"
    )
    assert len(integration.get_feedback_history()) == 2
    [only] = integration.get_feedback_history(generation_id=b)
    assert only["reviewer"] == "ben" and only["comments"] == "soft"
    assert [h["reviewer"] for h in integration.get_feedback_history(reviewer="ana")] == ["ana"]
    by_dimension = integration.get_feedback_history(dimension="content_relevance")
    assert [h["ratings"] for h in by_dimension] == [{"content_relevance": 5}]
    later = timezone.now() + timedelta(hours=1)
    assert integration.get_feedback_history(since=later) == []
    assert len(integration.get_feedback_history(until=later, pipeline="builtin")) == 2
    assert integration.get_feedback_history(revision=999) == []


def test_asynchronous_feedback_returns_at_once_and_its_result_can_be_looked_up(
    generator, finished, django_capture_on_commit_callbacks
):
    integration = generator.feedback_integration
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        submission = integration.record_human_feedback(
            generation_id=str(finished[0].id), ratings=RATINGS, reviewer="dora", wait=False
        )
    assert integration.feedback_status(submission)["status"] == "pending"
    assert not Review.objects.exists()  # not written yet: a worker writes it
    for callback in callbacks:
        callback()  # the broker hands the task to a worker (eager here)
    status = integration.feedback_status(submission)
    assert status["status"] == "recorded"
    assert Review.objects.get(pk=status["result_id"]).reviewer.username == "dora"


def test_asynchronous_feedback_is_checked_before_it_is_accepted(generator, finished):
    with pytest.raises(InvalidInput):
        generator.feedback_integration.record_human_feedback(
            generation_id=str(finished[0].id), ratings={"nonsense": 3}, wait=False
        )
    assert not FeedbackSubmission.objects.exists()
    with pytest.raises(NotFound):
        generator.feedback_integration.feedback_status("no-such-id")


def test_the_improvement_log_carries_each_changes_measured_effect(generator, finished):
    pipeline = generator.pipeline
    active = pipeline.revisions.get(status="active")
    proposal = revision_create(
        pipeline=pipeline, params={**active.params, "crf": 20}, parent=active, source="improver"
    )
    generator.feedback_integration.improver.approve(proposal.number)
    from improvements.experiments import ArmOutcome, experiment_apply

    experiment = Experiment.objects.get(pipeline=pipeline)
    experiment_apply(
        experiment=experiment,
        outcomes=[ArmOutcome(proposal.pk, "drop", "futile", 0.05, -0.2, 0.15, 60, 120)],
    )
    entry = next(e for e in generator.get_improvement_log() if e["number"] == proposal.number)
    assert entry["measured_effect"]["outcome"] == "dropped"
    assert (entry["measured_effect"]["lower"], entry["measured_effect"]["upper"]) == (-0.2, 0.15)
    assert entry["changes"] == {"crf": [23, 20]}
