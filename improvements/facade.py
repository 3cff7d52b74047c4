"""ModelImprover: the seed's name for analysis, proposals and improvement history."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser

from feedbackloop.config import FeedbackSettings
from generation.models import ConfigRevision
from improvements import services
from improvements.models import AnalysisRun


class ModelImprover:
    def __init__(self, feedback: FeedbackSettings) -> None:
        self.feedback = feedback

    def check_for_improvements(
        self, *, actor: AbstractBaseUser | None = None
    ) -> list[ConfigRevision]:
        return services.improvement_check(
            min_feedback=self.feedback.min_feedback_for_analysis,
            require_approval=self.feedback.require_approval,
            criteria=self.feedback.improvement_criteria,
            trigger=AnalysisRun.Trigger.LIBRARY,
            actor=actor,
        )

    def improvement_history(self, limit: int = 100) -> list[dict[str, Any]]:
        return services.improvement_log(limit)
