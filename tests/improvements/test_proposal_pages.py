"""The staff proposal pages: list and batch approval, one proposal with its evidence, samples."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from generation.models import Generation
from improvements.models import ExperimentArm
from pipelines.models import ConfigRevision
from pipelines.services.revisions import revision_create
from tests.factories import UserFactory


@pytest.fixture
def approver(db, client):
    user = UserFactory(username="ada", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="approve_configrevision"))
    client.force_login(user)
    return client


@pytest.fixture
def viewer(db, client):
    client.force_login(UserFactory(username="vic", is_staff=True))
    return client


def proposal(active, **changes) -> ConfigRevision:
    return revision_create(
        pipeline=active.pipeline,
        params={**active.params, **changes},
        parent=active,
        source=ConfigRevision.Source.IMPROVER,
        rationale="flicker is reported in 30% of reviews",
        evidence={"issues": {"flicker": {"rate": 0.3, "reviews": 40}}, "arm": {"role": "explorer"}},
        predicted_impact={"estimate": 0.2, "low": -0.1, "high": 0.5, "level": 0.9},
    )


def test_the_list_shows_each_waiting_proposal_with_its_changes_and_predicted_impact(
    approver, active_revision
):
    first = proposal(active_revision, camera_speed=0.2)
    page = approver.get("/proposals/").content.decode()
    assert f"r{first.number}" in page
    assert "camera_speed" in page and "+0.20 [-0.10, +0.50] (90%)" in page
    assert "explorer" in page


def test_a_batch_of_proposals_is_approved_at_once_as_experiment_arms(approver, active_revision):
    first = proposal(active_revision, camera_speed=0.2)
    second = proposal(active_revision, transition_seconds=1.0)
    response = approver.post(
        "/proposals/approve/",
        {"pipeline": "builtin", "revision": [first.number, second.number]},
        follow=True,
    )
    assert response.status_code == 200
    arms = ExperimentArm.objects.filter(revision__in=[first, second])
    assert arms.count() == 2
    assert {a.role for a in arms} == {"explorer"}  # the role the improver planned
    first.refresh_from_db()
    assert first.status == ConfigRevision.Status.CANARY


def test_without_the_approve_permission_a_batch_approval_is_refused(viewer, active_revision):
    first = proposal(active_revision, camera_speed=0.2)
    response = viewer.post(
        "/proposals/approve/", {"pipeline": "builtin", "revision": [first.number]}
    )
    assert response.status_code == 403
    first.refresh_from_db()
    assert first.status == ConfigRevision.Status.PROPOSED


def test_the_proposal_page_shows_rationale_diff_evidence_and_predicted_impact(
    viewer, active_revision
):
    revision = proposal(active_revision, camera_speed=0.2)
    page = viewer.get(f"/proposals/builtin/{revision.number}/").content.decode()
    assert "flicker is reported in 30% of reviews" in page
    assert "camera_speed" in page and "pan/zoom speed of the camera" in page  # the declaration
    assert "issues › flicker › rate" in page and "0.3" in page
    assert "Predicted impact on the objective" in page
    assert "Approving and rejecting need the approve permission" in page


def test_a_rejection_needs_a_reason_and_is_recorded(approver, active_revision):
    revision = proposal(active_revision, camera_speed=0.2)
    url = f"/proposals/builtin/{revision.number}/"
    approver.post(url, {"action": "reject", "reason": ""})
    revision.refresh_from_db()
    assert revision.status == ConfigRevision.Status.PROPOSED
    approver.post(url, {"action": "reject", "reason": "too risky before the launch"})
    revision.refresh_from_db()
    assert revision.status == ConfigRevision.Status.REJECTED
    assert revision.transitions.last().note == "too risky before the launch"


def test_sample_videos_are_rendered_on_demand_once_and_played_side_by_side(
    approver, active_revision, settings, django_capture_on_commit_callbacks
):
    settings.PROPOSAL_SAMPLE_PROMPTS = ["A briefing on wind farms"]
    revision = proposal(active_revision, camera_speed=0.2)
    url = f"/proposals/builtin/{revision.number}/"
    with django_capture_on_commit_callbacks(execute=True):  # the render tasks run (eagerly)
        approver.post(url, {"action": "samples"})
        approver.post(url, {"action": "samples"})  # asking again queues nothing new
    samples = Generation.objects.filter(idempotency_key__startswith="sample:")
    assert samples.count() == 2
    assert set(samples.values_list("revision_id", flat=True)) == {active_revision.pk, revision.pk}
    assert set(samples.values_list("status", flat=True)) == {"succeeded"}
    assert set(samples.values_list("experiment_arm", flat=True)) == {""}  # in no arm
    page = approver.get(url).content.decode()
    assert page.count("<video ") == 2
    assert f"Parent r{active_revision.number}" in page and f"Proposal r{revision.number}" in page


def test_an_unknown_proposal_is_a_404(viewer, active_revision):
    assert viewer.get("/proposals/builtin/999/").status_code == 404
    assert viewer.get("/proposals/?pipeline=nope").status_code == 404
