from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate

REDISPATCH_TASK_NAME = "webhooks: send again the deliveries whose task was lost"


class IntegrationsConfig(AppConfig):
    """Data in and out: exports, imports and webhooks. It sits above improvements: the lower
    apps never import it; they send signals that it connects to here."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "integrations"

    def ready(self) -> None:
        from integrations import webhooks

        webhooks.receivers_connect()
        post_migrate.connect(_schedule_ensure, sender=self, dispatch_uid="integrations.schedule")


def _schedule_ensure(sender: Any, using: str = "default", **kwargs: Any) -> None:
    """The webhook redispatch runs every minute on beat (created once; an admin may change it)."""
    from feedbackloop.schedules import periodic_task_ensure

    periodic_task_ensure(
        name=REDISPATCH_TASK_NAME,
        task="integrations.tasks.webhooks_redispatch_task",
        every_seconds=60,
        queue="default",
    )
