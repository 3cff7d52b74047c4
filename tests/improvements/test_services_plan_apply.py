"""Applying the policy's plan in library mode: new arms always open, whatever the running
arms' shares were (found by benchmarks/closed_loop.py: an arm that did not fit beside the
running ones made the whole improver step fail)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from improvements import services
from improvements.criteria import criteria_resolve
from improvements.experiments import arm_open, revisions_approve_as_arms
from improvements.models import AnalysisRun, ExperimentArm
from improvements.policy_inputs import arm_memory
from improvements.search import Interval, NewArm, Plan
from pipelines.models import ConfigRevision
from pipelines.services.revisions import revision_create

pytestmark = pytest.mark.django_db


def propose(parent: ConfigRevision, **changes) -> ConfigRevision:
    return revision_create(
        pipeline=parent.pipeline, params={**parent.params, **changes}, parent=parent
    )


def new_arm(key: str, active: ConfigRevision, **changes) -> NewArm:
    return NewArm(
        key=key,
        params={**active.params, **changes},
        role="explorer",
        control=active.pk,
        alpha=0.01,
        mixture=1.0,
        predicted=Interval(0.1, -0.2, 0.4, 0.9),
        rationale="test",
        evidence={},
        changes={k: (active.params.get(k), v) for k, v in changes.items()},
    )


def opening(active: ConfigRevision, *arms: NewArm, traffic: dict) -> Plan:
    """A plan that decides nothing and opens `arms` with `traffic`."""
    return Plan(active=active.pk, decisions=(), open=arms, traffic=traffic)


def apply(active: ConfigRevision, plan: Plan, *, require_approval: bool = False) -> None:
    run = AnalysisRun.objects.create(pipeline=active.pipeline)
    services._apply(
        active.pipeline,
        plan,
        run,
        require_approval=require_approval,
        actor=None,
        criteria=criteria_resolve().improvement_criteria,
    )


def shares() -> dict[int, float]:
    running = ExperimentArm.objects.filter(status=ExperimentArm.Status.RUNNING)
    return dict(running.values_list("revision__number", "share"))


def test_running_arms_give_up_traffic_before_the_plans_new_arm_opens(active_revision):
    running = arm_open(revision=propose(active_revision, crf=20), share=0.8)
    plan = opening(
        active_revision,
        new_arm("n1", active_revision, crf=30),
        traffic={running.revision_id: 0.3, "n1": 0.4},
    )
    apply(active_revision, plan)
    assert shares() == {running.revision.number: 0.3, running.revision.number + 1: 0.4}


def test_a_new_arm_whose_share_does_not_fit_takes_what_is_left_and_the_control_keeps_some(
    active_revision,
):
    running = arm_open(revision=propose(active_revision, crf=20), share=0.8)
    # The plan says nothing of the running arm.
    plan = opening(active_revision, new_arm("n1", active_revision, crf=30), traffic={"n1": 0.5})
    apply(active_revision, plan)
    opened = shares()
    assert set(opened) == {running.revision.number, running.revision.number + 1}
    assert opened[running.revision.number] == 0.8
    assert 0 < opened[running.revision.number + 1] < 0.2
    assert sum(opened.values()) < 1


def test_an_opened_arm_is_remembered_with_its_prediction_and_the_calibration_applied(
    active_revision,
):
    arm = new_arm("n1", active_revision, crf=30)
    arm = replace(arm, predicted=Interval(0.1, -0.2, 0.4, 0.9, calibration=1.6))
    apply(active_revision, opening(active_revision, arm, traffic={"n1": 0.5}))

    remembered = arm_memory(ExperimentArm.objects.get(status=ExperimentArm.Status.RUNNING))

    assert remembered.role == "explorer"
    assert remembered.predicted == Interval(0.1, -0.2, 0.4, 0.9, calibration=1.6)


def test_approving_a_batch_keeps_the_running_tests_share_and_gives_each_arm_its_planned_share(
    active_revision,
):
    # Approval mode: the plan's shares are applied to the running arms at the step; the new
    # arms wait for an admin. Approving them used to split the traffic evenly over every arm,
    # which took a running test's traffic away at every approval.
    test = arm_open(revision=propose(active_revision, crf=20), share=0.2)
    plan = opening(
        active_revision,
        new_arm("n1", active_revision, crf=30),
        new_arm("n2", active_revision, grain=0.0),
        traffic={test.revision_id: 0.6, "n1": 0.1, "n2": 0.1},
    )
    apply(active_revision, plan, require_approval=True)
    assert shares() == {test.revision.number: 0.6}
    waiting = list(ConfigRevision.objects.filter(status=ConfigRevision.Status.PROPOSED))
    assert len(waiting) == 2

    opened, refused = revisions_approve_as_arms(
        revisions=waiting, criteria=criteria_resolve().improvement_criteria
    )

    assert refused == {}
    assert shares() == {
        test.revision.number: 0.6,
        opened[0].revision.number: 0.1,
        opened[1].revision.number: 0.1,
    }


def test_an_approved_arm_whose_planned_share_does_not_fit_takes_what_is_left(active_revision):
    test = arm_open(revision=propose(active_revision, crf=20), share=0.85)
    # Planned before the running arm took more.
    plan = opening(active_revision, new_arm("n1", active_revision, crf=30), traffic={"n1": 0.3})
    apply(active_revision, plan, require_approval=True)
    waiting = list(ConfigRevision.objects.filter(status=ConfigRevision.Status.PROPOSED))

    opened, _ = revisions_approve_as_arms(
        revisions=waiting, criteria=criteria_resolve().improvement_criteria
    )

    assert shares()[test.revision.number] == 0.85
    assert shares()[opened[0].revision.number] == pytest.approx(0.10)
