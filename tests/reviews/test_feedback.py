import pytest
from django.db import IntegrityError, transaction

from feedbackloop.errors import Conflict, InvalidInput
from reviews.models import IssueReport, Rating, RatingDimension, Review
from reviews.selectors import feedback_summary
from reviews.services import IssueInput, comparison_record, review_create
from tests.factories import FinishedGenerationFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_rating_dimensions_are_seeded():
    assert set(RatingDimension.objects.values_list("slug", flat=True)) == {
        "visual_quality",
        "temporal_coherence",
        "content_relevance",
        "factual_accuracy",
        "overall_satisfaction",
    }


def test_database_refuses_a_rating_outside_1_to_5(reviewer):
    review = Review.objects.create(reviewer=reviewer, generation=FinishedGenerationFactory())
    dimension = RatingDimension.objects.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.create(review=review, dimension=dimension, value=6)
    with pytest.raises(IntegrityError), transaction.atomic():
        Rating.objects.create(review=review, dimension=dimension, value=0)


def test_database_refuses_an_issue_that_ends_before_it_starts(reviewer):
    generation = FinishedGenerationFactory()
    review = Review.objects.create(reviewer=reviewer, generation=generation)
    with pytest.raises(IntegrityError), transaction.atomic():
        IssueReport.objects.create(
            review=review, generation=generation, category="blur", start_s=3, end_s=2
        )


def test_one_review_per_reviewer_and_generation(reviewer):
    generation = FinishedGenerationFactory()
    review_create(reviewer=reviewer, generation=generation, ratings={"visual_quality": 4})
    with pytest.raises(Conflict, match="already reviewed"):
        review_create(reviewer=reviewer, generation=generation, ratings={"visual_quality": 2})
    assert Review.objects.count() == 1 and Rating.objects.count() == 1


@pytest.mark.parametrize(
    ("ratings", "message"),
    [
        ({"visual_quality": 6}, "integer from 1 to 5"),
        ({"visual_quality": 0}, "integer from 1 to 5"),
        ({"visual_quality": 3.5}, "integer from 1 to 5"),
        ({"visual_quality": "4"}, "integer from 1 to 5"),
        ({"visual_quality": True}, "integer from 1 to 5"),
        ({"sparkle": 3}, "known dimensions: content_relevance, factual_accuracy"),
        ({}, "non-empty"),
    ],
)
def test_bad_ratings_raise_a_clear_error_and_write_nothing(reviewer, ratings, message):
    generation = FinishedGenerationFactory()
    with pytest.raises(InvalidInput, match=message):
        review_create(
            reviewer=reviewer,
            generation=generation,
            ratings={"overall_satisfaction": 4, **ratings} if ratings else ratings,
        )
    assert Review.objects.count() == 0 and Rating.objects.count() == 0


def test_issue_past_the_end_of_the_video_is_refused_with_nothing_written(reviewer):
    generation = FinishedGenerationFactory(duration_s=5.0)
    with pytest.raises(InvalidInput, match="video is 5.00 s long"):
        review_create(
            reviewer=reviewer,
            generation=generation,
            ratings={"visual_quality": 3},
            issues=[IssueInput(category="blur", start_s=4.0, end_s=6.0)],
        )
    assert Review.objects.count() == 0 and IssueReport.objects.count() == 0


def test_unfinished_generation_cannot_be_reviewed(reviewer):
    generation = FinishedGenerationFactory(status="running", video="")
    with pytest.raises(InvalidInput, match="finished"):
        review_create(reviewer=reviewer, generation=generation, ratings={"visual_quality": 3})


def test_comparison_needs_two_different_finished_generations(reviewer):
    a, b = FinishedGenerationFactory(), FinishedGenerationFactory()
    comparison = comparison_record(
        reviewer=reviewer,
        left=a,
        right=b,
        winner="left",
        dimension_winners={"visual_quality": "tie"},
    )
    assert comparison.winning_generation_id == a.pk
    assert comparison.dimension_winners.get().winner == "tie"
    with pytest.raises(InvalidInput):
        comparison_record(reviewer=reviewer, left=a, right=a, winner="tie")
    with pytest.raises(InvalidInput):
        comparison_record(reviewer=reviewer, left=a, right=b, winner="both")


def test_feedback_summary_has_every_dimension_counts_issues_and_active_revision(active_revision):
    generation = FinishedGenerationFactory(revision=active_revision)
    review_create(
        reviewer=UserFactory(),
        generation=generation,
        ratings={"visual_quality": 4, "content_relevance": 5},
        issues=[IssueInput(category="flicker", start_s=1, end_s=2)],
    )
    review_create(reviewer=UserFactory(), generation=generation, ratings={"visual_quality": 2})
    summary = feedback_summary()
    assert summary["avg_visual_quality"] == 3.0
    assert summary["avg_content_relevance"] == 5.0
    assert summary["avg_factual_accuracy"] is None
    assert summary["total_reviews"] == 2 and summary["total_ratings"] == 3
    assert summary["issue_counts"]["flicker"] == 1 and summary["issue_counts"]["blur"] == 0
    assert summary["active_revision"]["number"] == active_revision.number
