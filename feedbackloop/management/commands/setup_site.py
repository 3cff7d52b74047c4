"""Make a migrated database ready to use: the config file's pipelines (each with an active
revision), groups, demo users, the improver's schedule and demo videos queued through the real
Celery pipeline.

Safe to run again: everything is looked up before it is created.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

from feedbackloop.config import load_config
from feedbackloop.schedules import periodic_task_ensure
from generation.models import Generation
from generation.services.rendering import generation_enqueue
from generation.services.requests import generation_request
from improvements.experiments import experiment_schedule_ensure
from improvements.services import improver_schedule_ensure
from pipelines.models import APPROVE_PERMISSION
from pipelines.selectors import pipeline_get, revision_active
from pipelines.services.registration import pipelines_from_config

DEMO_PROMPTS = [
    "A policy briefing on renewable energy initiatives",
    "Quarterly update on city public transport ridership",
    "An explainer on household water conservation",
]

REVIEWER_PERMS = ["reviews.add_review", "reviews.add_comparison", "reviews.view_ratingdimension"]


class Command(BaseCommand):
    help = "Register the pipelines, create groups, demo users and schedules; queue demo videos."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo-videos", action="store_true", help="queue no demo videos")

    def handle(self, *args, **options) -> None:
        config = load_config(settings.FEEDBACKLOOP_CONFIG_PATH)
        for registration in pipelines_from_config(entries=config.pipelines):
            pipeline = registration.pipeline
            active = revision_active(pipeline=pipeline)
            self.stdout.write(
                f"pipeline {pipeline.slug}: schema v{registration.version.number}, "
                f"active revision r{active.number}"
            )

        reviewer_group, _ = Group.objects.get_or_create(name="reviewer")
        reviewer_group.permissions.add(*self._perms(REVIEWER_PERMS))
        admin_group, _ = Group.objects.get_or_create(name="admin")
        admin_group.permissions.add(*self._perms([APPROVE_PERMISSION]))

        admin_user = self._user("DEMO_ADMIN", "admin", "admin-pass-123", staff=True)
        admin_user.groups.add(admin_group)
        reviewer = self._user("DEMO_REVIEWER", "reviewer", "reviewer-pass-123", staff=False)
        reviewer.groups.add(reviewer_group)

        if improver_schedule_ensure(every_minutes=config.feedback.analysis_frequency_minutes):
            self.stdout.write(
                f"improver scheduled every {config.feedback.analysis_frequency_minutes} min"
            )
        experiment_schedule_ensure(every_minutes=5)
        periodic_task_ensure(
            name="reconciler: recover stuck generations and measurements, sweep litter",
            task="generation.tasks.reconcile_task",
            every_seconds=settings.RECONCILE_EVERY_SECONDS,
            queue="default",
        )
        periodic_task_ensure(
            name="reconciler: record asynchronous feedback whose task was lost",
            task="reviews.tasks.submissions_reconcile_task",
            every_seconds=60,
            queue="default",
        )

        if options["no_demo_videos"]:
            return
        demo = pipeline_get(slug=config.default_pipeline)
        if not demo.renderer:
            self.stdout.write(f"no demo videos: {demo.slug} is rendered by remote workers")
            return
        for index, prompt in enumerate(DEMO_PROMPTS, start=1):
            generation, created = generation_request(
                pipeline=demo,
                prompt=prompt,
                idempotency_key=f"demo-{index}",
                requested_by=admin_user,
            )
            if not created and generation.status == Generation.Status.QUEUED:
                # Queued on an earlier run whose worker never got to it: ask again. The task
                # claims the row atomically, so a duplicate message renders nothing twice.
                generation_enqueue(generation=generation)
            self.stdout.write(f"demo video {index}: {generation.status} ({generation.id})")

    def _perms(self, names: list[str]) -> list[Permission]:
        perms = []
        for name in names:
            app_label, codename = name.split(".")
            perms.append(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return perms

    def _user(self, prefix: str, username: str, password: str, *, staff: bool):
        username = os.environ.get(f"{prefix}_USERNAME", username)
        password = os.environ.get(f"{prefix}_PASSWORD", password)
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff}
        )
        if created or os.environ.get(f"{prefix}_PASSWORD"):
            user.set_password(password)
            user.save()
            self.stdout.write(
                self.style.SUCCESS(
                    f"{'admin' if staff else 'reviewer'} login: {username} / {password}"
                )
            )
        else:
            self.stdout.write(
                f"{'admin' if staff else 'reviewer'} login: {username} (password unchanged)"
            )
        return user
