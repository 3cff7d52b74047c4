"""Periodic improver work, run by django-celery-beat on queue `improver`.

The analysis and the policy (numpy, scipy, scikit-learn) are imported inside the tasks: every
worker imports this module at start, and a metrics or generation worker should not load them.
"""

from __future__ import annotations

from celery import shared_task
from django.db import OperationalError

from improvements.models import Experiment
from pipelines.models import Pipeline


def _step(pipelines, min_feedback: int | None = None) -> list[str]:
    from improvements.criteria import criteria_resolve
    from improvements.services import improvement_check

    feedback = criteria_resolve()
    changed = []
    for pipeline in pipelines:
        revisions = improvement_check(
            pipeline=pipeline,
            min_feedback=feedback.min_feedback_for_analysis
            if min_feedback is None
            else min_feedback,
            require_approval=feedback.require_approval,
            criteria=feedback.improvement_criteria,
        )
        changed += [r.label for r in revisions]
    return changed


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=600,
    time_limit=660,
)
def improver_run_task() -> list[str]:
    """Every pipeline: analyse feedback once its threshold is met, decide arms, propose new."""
    return _step(Pipeline.objects.order_by("slug"))


@shared_task(
    acks_late=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
    soft_time_limit=120,
    time_limit=150,
)
def experiments_evaluate_task() -> list[str]:
    """Pipelines with a running experiment: decide its arms on any new rating (idempotent)."""
    running = Pipeline.objects.filter(experiments__status=Experiment.Status.RUNNING).distinct()
    return _step(running, min_feedback=1)
