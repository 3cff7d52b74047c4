"""The API's review submission on PostgreSQL: one SQL statement writes the review, its ratings
and its issue reports, or nothing; every refusal is the same as before; the invariants (one
review per reviewer and generation, ratings 1-5, all or nothing) hold under concurrency.

benchmarks/ratings_load.py measures its speed; these tests pin down what it may not change.
"""

from __future__ import annotations

import threading

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from rest_framework.test import APIClient

from generation.models import Generation
from reviews import services
from reviews.models import IssueReport, Rating, RatingDimension, Review
from tests.conftest import skip_or_fail
from tests.factories import (
    FIVE,
    FinishedGenerationFactory,
    PipelineFactory,
    RevisionFactory,
)


@pytest.fixture(autouse=True)
def _postgresql(rating_dimensions):
    if connection.vendor != "postgresql":
        skip_or_fail("the one-statement submission is PostgreSQL's (set DATABASE_URL)")
    cache.clear()  # throttle counts


def reviewer(username: str = "rita"):
    user = get_user_model().objects.create(username=username)
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    return user


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def url(generation_id) -> str:
    return f"/api/v1/generations/{generation_id}/feedback/"


@pytest.mark.django_db
def test_a_submission_is_one_write_statement_after_session_user_and_role():
    client = client_for(reviewer())
    first, second = FinishedGenerationFactory(), FinishedGenerationFactory()
    client.post(url(first.pk), {"ratings": FIVE}, format="json")  # warm: content types etc.
    with CaptureQueriesContext(connection) as captured:
        response = client.post(url(second.pk), {"ratings": FIVE}, format="json")
    assert response.status_code == 201, response.content
    statements = [q["sql"] for q in captured.captured_queries]
    writes = [s for s in statements if "INSERT" in s.upper()]
    assert len(writes) == 1, statements
    # At most the session, the user and the role (each may come from the cache when Redis is
    # configured) before the write, and nothing else.
    reads = [s for s in statements if s not in writes]
    assert len(reads) <= 3 and all(s.lstrip().upper().startswith("SELECT") for s in reads), reads
    assert statements[-1] == writes[0]


@pytest.mark.django_db
def test_the_review_its_ratings_and_its_issues_are_written_together():
    user = reviewer()
    generation = FinishedGenerationFactory(duration_s=10.0)
    response = client_for(user).post(
        url(str(generation.pk).upper()),
        {
            "ratings": FIVE,
            "comments": "  crisp text, fast cuts  ",
            "seconds_spent": 42.5,
            "issues": [
                {"category": "blur", "start_s": 1.0, "end_s": 2.5, "severity": 2, "note": " x "},
                {"category": "flicker", "start_s": 9.0, "end_s": 10.0},
            ],
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["generation_id"] == str(generation.pk)
    review = Review.objects.get(pk=body["review_id"])
    assert (review.reviewer, review.generation) == (user, generation)
    assert review.comments == "crisp text, fast cuts" and review.seconds_spent == 42.5
    assert review.created_at is not None and review.updated_at is not None
    assert {r.dimension.slug: r.value for r in review.ratings.all()} == FIVE
    issues = list(IssueReport.objects.filter(review=review).order_by("start_s"))
    assert [(i.category, i.severity, i.start_s, i.end_s, i.note) for i in issues] == [
        ("blur", 2, 1.0, 2.5, "x"),
        ("flicker", IssueReport.Severity.MINOR, 9.0, 10.0, ""),
    ]
    assert {i.generation_id for i in issues} == {generation.pk}


@pytest.mark.django_db
def test_a_reviewer_by_permission_rather_than_group_may_still_submit():
    user = get_user_model().objects.create(username="perm-only")
    user.user_permissions.add(Permission.objects.get(codename="add_review"))
    response = client_for(user).post(
        url(FinishedGenerationFactory().pk), {"ratings": FIVE}, format="json"
    )
    assert response.status_code == 201, response.content


@pytest.mark.django_db
def test_a_pipelines_own_dimension_counts_for_its_videos_only():
    client = client_for(reviewer())
    builtin = FinishedGenerationFactory()
    other = PipelineFactory(slug="diffusers", name="Diffusers", renderer="")
    RatingDimension.objects.create(slug="motion_realism", label="Motion", pipeline=other)
    theirs = FinishedGenerationFactory(revision=RevisionFactory(pipeline=other))
    body = {"ratings": {**FIVE, "motion_realism": 4}}
    assert _refusal(client, builtin.pk, body) == (400, "unknown_dimension")
    response = client.post(url(theirs.pk), body, format="json")
    assert response.status_code == 201, response.content
    assert Rating.objects.filter(dimension__slug="motion_realism").count() == 1


def _refusal(client, generation_id, body) -> tuple[int, str]:
    response = client.post(url(generation_id), body, format="json")
    return response.status_code, response.json()["error"]["code"]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown generation", (404, "unknown_generation")),
        ("malformed id", (404, "unknown_generation")),
        ("unfinished generation", (400, "not_finished")),
        ("unknown dimension", (400, "unknown_dimension")),
        ("inactive dimension", (400, "unknown_dimension")),
        ("rating 6", (400, "invalid_rating")),
        ("rating as text", (400, "invalid_rating")),
        ("rating true", (400, "invalid_rating")),
        ("issue past the end", (400, "invalid_issue")),
        ("issue ending before it starts", (400, "invalid_issue")),
        ("bad body for an unknown generation", (404, "unknown_generation")),
        ("second review", (409, "already_reviewed")),
    ],
)
def test_every_refusal_keeps_its_code_and_writes_nothing(case, expected):
    client = client_for(reviewer())
    generation = FinishedGenerationFactory(duration_s=10.0)
    target, body = str(generation.pk), {"ratings": dict(FIVE)}
    if case == "unknown generation":
        target = "6f1d3a52-0c0e-4c3b-9a51-1b2f1e0e4d11"
    elif case == "malformed id":
        target = "not-a-uuid"
    elif case == "unfinished generation":
        Generation.objects.filter(pk=generation.pk).update(
            status=Generation.Status.QUEUED, video=""
        )
    elif case == "unknown dimension":
        body["ratings"]["sharpness"] = 3
    elif case == "inactive dimension":
        RatingDimension.objects.filter(slug="factual_accuracy").update(active=False)
    elif case.startswith("rating "):
        body["ratings"]["visual_quality"] = {"rating 6": 6, "rating as text": "4"}.get(case, True)
    elif case == "issue past the end":
        body["issues"] = [{"category": "blur", "start_s": 9.0, "end_s": 10.5}]
    elif case == "issue ending before it starts":
        body["issues"] = [{"category": "blur", "start_s": 3.0, "end_s": 2.0}]
    elif case == "bad body for an unknown generation":
        target, body = "6f1d3a52-0c0e-4c3b-9a51-1b2f1e0e4d11", {"ratings": "four"}
    elif case == "second review":
        assert client.post(url(target), body, format="json").status_code == 201
    before = (Review.objects.count(), Rating.objects.count(), IssueReport.objects.count())
    assert _refusal(client, target, body) == expected
    after = (Review.objects.count(), Rating.objects.count(), IssueReport.objects.count())
    assert after == before


@pytest.mark.django_db(transaction=True)  # autocommit: the statement is its own transaction
def test_the_database_check_on_ratings_undoes_the_whole_statement(rating_dimensions):
    user, generation = reviewer(), FinishedGenerationFactory()
    with pytest.raises(IntegrityError):
        # Past the service's own validation, straight at the statement: 9 breaks the CHECK
        # after the review row was inserted by the same statement.
        services._review_insert(
            reviewer=user,
            generation_id=generation.pk,
            ratings={"visual_quality": 4, "content_relevance": 9},
            comments="",
            issues=[],
            seconds_spent=None,
        )
    assert not Review.objects.exists() and not Rating.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_simultaneous_double_submits_make_exactly_one_review(rating_dimensions):
    user, generation = reviewer(), FinishedGenerationFactory()
    results: list[tuple[int, str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def submit() -> None:
        try:
            client = client_for(user)
            barrier.wait()
            response = client.post(url(generation.pk), {"ratings": FIVE}, format="json")
            code = response.json().get("error", {}).get("code", "")
            results.append((response.status_code, code))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [(201, "")] + [(409, "already_reviewed")] * 7
    review = Review.objects.get(reviewer=user, generation=generation)
    assert review.ratings.count() == 5
