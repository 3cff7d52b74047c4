"""Periodic tasks kept in the database (django-celery-beat), so an admin can change them."""

from __future__ import annotations

from django.conf import settings


def periodic_task_ensure(
    *,
    name: str,
    task: str,
    every_minutes: int | None = None,
    every_seconds: int | None = None,
    queue: str = "improver",
) -> bool:
    """Create a periodic task if none has this name; True if created.

    An existing schedule is left alone: an admin may have changed its interval.
    """
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    if PeriodicTask.objects.filter(name=name).exists():
        return False
    if (every_minutes is None) == (every_seconds is None):
        raise ValueError("give every_minutes or every_seconds")
    every, period = (
        (every_minutes, IntervalSchedule.MINUTES)
        if every_minutes is not None
        else (every_seconds, IntervalSchedule.SECONDS)
    )
    interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=period)
    PeriodicTask.objects.create(
        name=name, task=task, interval=interval, queue=settings.CELERY_QUEUES_USED[queue]
    )
    return True
