"""The improvement criteria in force: the config file's, with the admin's overrides on top."""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings

from feedbackloop.config import FeedbackSettings, load_config
from improvements.models import ImproverSettings

CRITERIA_FIELDS = (
    "target_rating",
    "min_effect",
    "alpha",
    "min_ratings_per_arm",
    "canary_share",
    "control_history",
)
GUARDRAIL_FIELDS = ("max_failure_rate", "max_generation_seconds_ratio", "max_issue_rate_increase")


def criteria_resolve(*, require_approval: bool | None = None) -> FeedbackSettings:
    """Feedback settings from FEEDBACKLOOP_CONFIG with any non-blank ImproverSettings applied.

    The web site's require_approval comes from settings.IMPROVER_REQUIRE_APPROVAL unless given.
    """
    feedback = load_config(settings.FEEDBACKLOOP_CONFIG_PATH).feedback
    overrides = ImproverSettings.objects.order_by("id").first()
    if overrides is not None:
        criteria = feedback.improvement_criteria
        guardrails = replace(
            criteria.guardrails,
            **{
                f: getattr(overrides, f)
                for f in GUARDRAIL_FIELDS
                if getattr(overrides, f) is not None
            },
        )
        criteria = replace(
            criteria,
            guardrails=guardrails,
            **{
                f: getattr(overrides, f)
                for f in CRITERIA_FIELDS
                if getattr(overrides, f) is not None
            },
        )
        feedback = replace(feedback, improvement_criteria=criteria)
        if overrides.min_feedback_for_analysis is not None:
            feedback = replace(
                feedback, min_feedback_for_analysis=overrides.min_feedback_for_analysis
            )
    return replace(
        feedback,
        require_approval=settings.IMPROVER_REQUIRE_APPROVAL
        if require_approval is None
        else require_approval,
    )
