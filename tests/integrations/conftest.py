"""Fixtures for the integrations tests: a small world of feedback, real local servers."""

from __future__ import annotations

import socket

import pytest

from generation.models import MetricValue
from reviews.services import comparison_record, review_create
from tests.factories import FinishedGenerationFactory, PipelineFactory, RevisionFactory, UserFactory


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def feedback_world(db, rating_dimensions):
    """Two pipelines; builtin has two revisions. Reviews with ratings and issues, comparisons
    (left wins, right wins, tie), metrics from the server and a worker."""
    builtin = PipelineFactory()
    other = PipelineFactory(slug="other", name="Other model")
    r1 = RevisionFactory(pipeline=builtin, number=1, params={"fps": 12, "crf": 20})
    r2 = RevisionFactory(pipeline=builtin, number=2, params={"fps": 24, "crf": 18})
    o1 = RevisionFactory(pipeline=other, number=1, params={"steps": 30})
    g1 = FinishedGenerationFactory(revision=r1, prompt="Harbour traffic", params=r1.params)
    g2 = FinishedGenerationFactory(revision=r2, prompt="Harbour traffic", params=r2.params)
    g3 = FinishedGenerationFactory(revision=o1, prompt="Harbour traffic", params=o1.params)
    ann, bob = UserFactory(username="ann"), UserFactory(username="bob")
    review_create(
        reviewer=ann,
        generation=g1,
        ratings={"visual_quality": 2, "overall_satisfaction": 3},
        comments="blurry titles",
        issues=[{"category": "blur", "start_s": 1.5, "end_s": 3.0, "severity": 2}],
        seconds_spent=42.0,
    )
    review_create(reviewer=bob, generation=g2, ratings={"visual_quality": 5}, seconds_spent=20.0)
    review_create(reviewer=ann, generation=g3, ratings={"visual_quality": 4})
    left_wins = comparison_record(
        reviewer=ann,
        left=g1,
        right=g2,
        winner="left",
        dimension_winners={"visual_quality": "right", "content_relevance": "left"},
        seconds_spent=30.0,
    )
    right_wins = comparison_record(
        reviewer=bob,
        left=g1,
        right=g2,
        winner="right",
        dimension_winners={"visual_quality": "right", "factual_accuracy": "tie"},
    )
    tie = comparison_record(reviewer=bob, left=g2, right=g3, winner="tie")
    MetricValue.objects.create(generation=g1, name="sharpness", value=0.25, source="server")
    MetricValue.objects.create(generation=g1, name="render_fps", value=31.0, source="worker")
    return {
        "pipelines": (builtin, other),
        "revisions": (r1, r2, o1),
        "generations": (g1, g2, g3),
        "users": (ann, bob),
        "comparisons": (left_wins, right_wins, tie),
    }


@pytest.fixture
def staff(db):
    return UserFactory(username="stella", is_staff=True, is_superuser=True)
