"""Periodic tasks kept in the database (django-celery-beat), so an admin can change them."""

from __future__ import annotations

from django.conf import settings


def periodic_task_ensure(*, name: str, task: str, every_minutes: int) -> bool:
    """Create a periodic task on the improver queue if none has this name; True if created.

    An existing schedule is left alone: an admin may have changed its interval.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=name).exists():
        return False
    interval, _ = IntervalSchedule.objects.get_or_create(
        every=every_minutes, period=IntervalSchedule.MINUTES
    )
    PeriodicTask.objects.create(
        name=name, task=task, interval=interval, queue=settings.CELERY_QUEUES_USED["improver"]
    )
    return True
