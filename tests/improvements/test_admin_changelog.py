"""The revision changelist as the changelog; approving, rejecting and rolling back there."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from improvements.experiments import ArmOutcome, arm_open, experiment_apply
from improvements.models import Experiment, ExperimentArm
from pipelines.models import ConfigRevision
from pipelines.services.revisions import revision_create, revision_transition

pytestmark = pytest.mark.django_db
User = get_user_model()
S = ConfigRevision.Status
CHANGELIST = "/admin/pipelines/configrevision/"


@pytest.fixture
def boss(client):
    client.force_login(User.objects.create(username="boss", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def clerk(client):
    """Staff who may see and change revisions but not approve them."""
    user = User.objects.create(username="clerk", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="pipelines",
            codename__in=["view_configrevision", "change_configrevision"],
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def proposal(active_revision):
    return revision_create(
        pipeline=active_revision.pipeline,
        params={**active_revision.params, "crf": 18},
        parent=active_revision,
        rationale="text is soft at crf 23",
        evidence={"dimension": "text_legibility", "mean": 3.1},
        predicted_impact={"dimension": "text_legibility", "expected_change": 0.4},
    )


def change_url(revision: ConfigRevision, step: str = "change") -> str:
    return f"{CHANGELIST}{revision.pk}/{step}/"


def look(arm: ExperimentArm, reason: str, **numbers) -> None:
    """One look at the arm that decides to keep it running (the policy's call, given here)."""
    outcome = ArmOutcome(revision_id=arm.revision_id, kind="continue", reason=reason, **numbers)
    experiment_apply(experiment=arm.experiment, outcomes=[outcome])


def test_the_approve_action_opens_an_experiment_arm(boss, proposal, active_revision):
    response = boss.post(
        CHANGELIST, {"action": "approve_start_canary", "_selected_action": [proposal.pk]}
    )
    assert response.status_code == 302
    proposal.refresh_from_db()
    active_revision.refresh_from_db()
    assert (proposal.status, active_revision.status) == ("canary", "active")
    arm = ExperimentArm.objects.get()
    assert arm.revision == proposal and arm.experiment.started_by.username == "boss"
    page = boss.get(CHANGELIST).content.decode()
    assert f"running vs r{active_revision.number} (20% of traffic): no look yet" in page


def test_the_changelist_is_the_changelog(boss, proposal, active_revision):
    arm = arm_open(revision=proposal)
    look(
        arm, "waiting for ratings", estimate=1.0, lower=-0.5, upper=2.5, n_candidate=3, n_control=3
    )
    page = boss.get(CHANGELIST).content.decode()
    for column in (
        "number",
        "status",
        "source",
        "created by",
        "created at",
        "rationale",
        "changes vs parent",
        "experiment result",
    ):
        assert column in page.lower(), column
    assert "text is soft at crf 23" in page
    assert "<code>crf</code>: 23 → <b>18</b>" in page
    summary = f"running vs r{active_revision.number} (20% of traffic): Δ +1.00 [-0.50, +2.50]"
    assert summary in page and "n 3/3" in page


def test_the_revision_page_shows_history_evidence_impact_and_decisions(boss, proposal):
    arm = arm_open(revision=proposal)
    look(arm, "no ratings yet in one arm")
    page = boss.get(change_url(proposal)).content.decode()
    assert "text_legibility" in page and "expected_change" in page  # evidence, predicted impact
    assert "arm on 20% of new generations" in page  # a transition's note
    assert "no ratings yet in one arm" in page  # the recorded decision
    assert "always-valid interval" in page


def test_buttons_on_a_proposal_page_approve_or_reject_it(boss, proposal):
    page = boss.get(change_url(proposal)).content.decode()
    assert f'action="{change_url(proposal, "approve")}"' in page
    assert f'action="{change_url(proposal, "reject")}"' in page
    assert "csrfmiddlewaretoken" in page
    response = boss.post(change_url(proposal, "reject"), {"note": "too risky"})
    assert response.status_code == 302 and response["Location"] == change_url(proposal)
    proposal.refresh_from_db()
    assert proposal.status == "rejected" and proposal.transitions.last().note == "too risky"


def test_the_approve_button_opens_an_experiment_arm(boss, proposal, active_revision):
    response = boss.post(change_url(proposal, "approve"))
    assert response.status_code == 302
    proposal.refresh_from_db()
    assert proposal.status == "canary"
    message = f"approved: an arm on 20% of new generations against r{active_revision.number}"
    assert message in boss.get(change_url(proposal)).content.decode()


def test_the_rollback_button_on_an_earlier_revision_makes_a_new_one(boss, active_revision):
    newer = revision_create(
        pipeline=active_revision.pipeline,
        params={**active_revision.params, "crf": 30},
        parent=active_revision,
    )
    revision_transition(revision=newer, to_status=S.APPROVED)
    revision_transition(revision=newer, to_status=S.ACTIVE)
    page = boss.get(change_url(active_revision)).content.decode()
    assert "Roll back to this revision" in page
    before = ConfigRevision.objects.count()
    boss.post(change_url(active_revision, "rollback"))
    restored = ConfigRevision.objects.get(status="active")
    assert restored.source == "rollback" and restored.number == newer.number + 1
    assert restored.params == active_revision.params
    assert ConfigRevision.objects.count() == before + 1


def test_a_failed_step_shows_the_reason(boss, proposal):
    boss.post(change_url(proposal, "reject"))
    boss.post(change_url(proposal, "approve"))
    page = boss.get(change_url(proposal)).content.decode()
    assert "only a proposed or approved revision can join an experiment" in page
    assert not Experiment.objects.exists()


def test_without_the_permission_there_are_no_buttons_or_actions_and_urls_are_403(clerk, proposal):
    page = clerk.get(change_url(proposal)).content.decode()
    assert "revision-actions" not in page and "Approve: run as an experiment arm" not in page
    listing = clerk.get(CHANGELIST).content.decode()
    assert "approve_start_canary" not in listing and "rollback_to" not in listing
    for step in ("approve", "reject", "rollback"):
        assert clerk.post(change_url(proposal, step)).status_code == 403
    response = clerk.post(
        CHANGELIST, {"action": "approve_start_canary", "_selected_action": [proposal.pk]}
    )
    assert response.status_code in (200, 302)
    proposal.refresh_from_db()
    assert proposal.status == "proposed" and not Experiment.objects.exists()


def test_the_step_urls_answer_get_with_405(boss, proposal):
    assert boss.get(change_url(proposal, "approve")).status_code == 405


def test_activate_now_is_refused_while_a_canary_runs(boss, proposal, active_revision):
    arm_open(revision=proposal)
    other = revision_create(
        pipeline=active_revision.pipeline,
        params={**active_revision.params, "crf": 28},
        parent=active_revision,
    )
    response = boss.post(
        CHANGELIST, {"action": "approve_and_activate", "_selected_action": [other.pk]}, follow=True
    )
    assert "An experiment is running in pipeline builtin" in response.content.decode()
    other.refresh_from_db()
    assert other.status == "proposed"


def test_a_canary_page_has_a_stop_button(boss, proposal, active_revision):
    arm = arm_open(revision=proposal)
    page = boss.get(change_url(proposal)).content.decode()
    assert f"Stop this canary (keep r{active_revision.number})" in page
    before = ConfigRevision.objects.count()
    boss.post(change_url(active_revision, "rollback"))
    proposal.refresh_from_db()
    arm.refresh_from_db()
    assert proposal.status == "rolled_back" and arm.status == "aborted"
    assert Experiment.objects.get().status == "finished"
    assert ConfigRevision.objects.count() == before


def test_revision_page_offers_no_save_buttons_because_revisions_are_immutable(client, db):
    from django.contrib.auth import get_user_model

    from pipelines.services.revisions import revision_ensure_active
    from tests.factories import PipelineFactory

    revision = revision_ensure_active(pipeline=PipelineFactory(), params={"crf": 23})
    client.force_login(
        get_user_model().objects.create_superuser("root2", "r@example.com", "pw-12345")
    )
    page = client.get(f"{CHANGELIST}{revision.pk}/change/").content.decode()
    assert 'name="_save"' not in page and 'name="_continue"' not in page
