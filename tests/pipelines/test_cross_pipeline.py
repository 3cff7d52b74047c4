"""Reviews across pipelines: a blind comparison may set two pipelines' videos of one prompt
against each other; a pipeline's own rating dimensions apply to its videos only."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from feedbackloop.errors import InvalidInput
from pipelines.selectors import revision_active
from pipelines.services.registration import pipeline_register
from reviews.models import Comparison, ComparisonDimensionWinner, RatingDimension, Review
from reviews.selectors import comparison_pair_next, dimensions_compared, dimensions_for
from reviews.services import comparison_record, review_create
from tests.factories import FinishedGenerationFactory, UserFactory
from tests.pipelines.conftest import DIFFUSERS

pytestmark = pytest.mark.django_db
PROMPT = "A lighthouse in a storm"


@pytest.fixture
def diffusers(db):
    return pipeline_register(slug="diffusers", name="Diffusers", parameters=DIFFUSERS).pipeline


@pytest.fixture
def motion(diffusers):
    return RatingDimension.objects.create(
        slug="motion_realism", label="Motion realism", pipeline=diffusers, order=50
    )


@pytest.fixture
def videos(builtin_pipeline, diffusers):
    """One finished video of the prompt from each pipeline."""
    return {
        pipeline.slug: FinishedGenerationFactory(
            prompt=PROMPT, revision=revision_active(pipeline=pipeline)
        )
        for pipeline in (builtin_pipeline, diffusers)
    }


@pytest.fixture
def member(db):
    user = UserFactory(username="rosa")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def test_a_comparison_pair_may_set_two_pipelines_against_each_other(videos, member):
    pair = comparison_pair_next(reviewer=member)
    assert pair is not None
    assert {g.revision.pipeline.slug for g in pair} == {"builtin", "diffusers"}
    assert {g.prompt for g in pair} == {PROMPT}
    assert comparison_pair_next(reviewer=member, pipeline="builtin") is None  # one revision only
    comparison = comparison_record(
        reviewer=member,
        left=pair[0],
        right=pair[1],
        winner="left",
        dimension_winners={"visual_quality": "right"},
    )
    assert comparison.left.revision.pipeline_id != comparison.right.revision.pipeline_id
    assert comparison_pair_next(reviewer=member) is None  # compared once, not offered again


def test_the_cross_pipeline_comparison_page_stays_blind(client, videos, member):
    client.force_login(member)
    response = client.get("/compare/")
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert PROMPT in html
    for generation in videos.values():
        assert str(generation.id) not in html
    assert re.search(r"(?<![\w-])diffusers(?![\w-])", html, flags=re.I) is None
    assert "Built-in renderer" not in html and "Diffusers" not in html


def test_a_pipelines_own_dimension_is_offered_for_its_videos_only(
    builtin_pipeline, diffusers, motion
):
    assert motion in dimensions_for(pipeline=diffusers)
    assert motion not in dimensions_for(pipeline=builtin_pipeline)
    assert {"overall_satisfaction", "motion_realism"} <= {
        d.slug for d in dimensions_for(pipeline=diffusers)
    }


def test_a_pipelines_own_dimension_is_accepted_for_its_videos(videos, member, motion):
    review = review_create(
        reviewer=member,
        generation=videos["diffusers"],
        ratings={"motion_realism": 2, "overall_satisfaction": 3},
    )
    assert review.ratings.get(dimension=motion).value == 2


def test_a_pipelines_own_dimension_is_refused_for_another_pipelines_video(videos, member, motion):
    with pytest.raises(InvalidInput) as exc:
        review_create(
            reviewer=member,
            generation=videos["builtin"],
            ratings={"motion_realism": 2, "overall_satisfaction": 3},
        )
    assert exc.value.code == "unknown_dimension" and "'motion_realism'" in exc.value.message
    assert "motion_realism" not in exc.value.message.split("known dimensions:")[1]
    assert not Review.objects.exists()


def test_over_the_api_a_pipelines_own_dimension_is_400_for_another_pipelines_video(
    videos, member, motion
):
    client = APIClient()
    client.force_login(member)
    refused = client.post(
        f"/api/v1/generations/{videos['builtin'].id}/feedback/",
        {"ratings": {"motion_realism": 4}},
        format="json",
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "unknown_dimension"
    assert not Review.objects.exists()
    accepted = client.post(
        f"/api/v1/generations/{videos['diffusers'].id}/feedback/",
        {"ratings": {"motion_realism": 4}},
        format="json",
    )
    assert accepted.status_code == 201, accepted.content


def test_a_comparison_across_pipelines_asks_only_the_global_dimensions(videos, member, motion):
    left, right = videos["builtin"], videos["diffusers"]
    assert motion not in dimensions_compared(left=left, right=right)
    with pytest.raises(InvalidInput) as exc:
        comparison_record(
            reviewer=member,
            left=left,
            right=right,
            winner="tie",
            dimension_winners={"motion_realism": "left"},
        )
    assert exc.value.code == "unknown_dimension"
    assert not Comparison.objects.exists() and not ComparisonDimensionWinner.objects.exists()


def test_a_comparison_within_the_pipeline_may_use_its_own_dimension(
    diffusers, videos, member, motion
):
    other = FinishedGenerationFactory(prompt=PROMPT, revision=revision_active(pipeline=diffusers))
    assert motion in dimensions_compared(left=videos["diffusers"], right=other)
    comparison = comparison_record(
        reviewer=member,
        left=videos["diffusers"],
        right=other,
        winner="right",
        dimension_winners={"motion_realism": "right"},
    )
    assert comparison.dimension_winners.get().dimension == motion


def test_pipelines_are_ranked_by_blind_comparisons_between_them(videos, member, client):
    from improvements.analysis import pipelines_ranking

    builtin, diffusers = videos["builtin"], videos["diffusers"]
    reviewers = [UserFactory(username=f"judge{i}") for i in range(12)]
    for i, reviewer in enumerate(reviewers):
        # diffusers wins 10 of 12, whichever side it is shown on
        left, right = (builtin, diffusers) if i % 2 else (diffusers, builtin)
        winner = "right" if (left is builtin) == (i < 10) else "left"
        comparison_record(reviewer=reviewer, left=left, right=right, winner=winner)
    ranked = pipelines_ranking()
    assert ranked["comparisons"] == 12
    assert [row["pipeline"] for row in ranked["ranking"]] == ["diffusers", "builtin"]
    top = ranked["ranking"][0]
    assert top["ci_low"] < top["strength"] < top["ci_high"]
    staff = UserFactory(username="sam", is_staff=True)
    client.force_login(staff)
    page = client.get("/dashboard/?pipeline=builtin").content.decode()
    assert "Model selection: pipelines compared blind" in page


def test_a_reviewer_may_keep_to_one_pipelines_videos(videos, member, client):
    client.force_login(member)
    page = client.get("/review/?pipeline=diffusers").content.decode()
    assert "every pipeline" in page  # the picker, since there are two pipelines
    response = client.get("/review/next/")
    assert response.status_code == 302
    assert str(videos["diffusers"].id) in response["Location"]
    assert client.get("/review/?pipeline=nope").status_code == 404
