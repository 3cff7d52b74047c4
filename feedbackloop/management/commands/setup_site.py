"""Make a migrated database ready to use: the first revision, groups, demo users, the
improver's schedule and demo videos queued through the real Celery pipeline.

Safe to run again: everything is looked up before it is created.
"""

from __future__ import annotations

import os

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.core.management.base import BaseCommand

from feedbackloop.config import load_config
from generation import services
from generation.models import Generation
from improvements.experiments import experiment_schedule_ensure
from improvements.services import improver_schedule_ensure

DEMO_PROMPTS = [
    "A policy briefing on renewable energy initiatives",
    "Quarterly update on city public transport ridership",
    "An explainer on household water conservation",
]

REVIEWER_PERMS = ["reviews.add_review", "reviews.add_comparison", "reviews.view_ratingdimension"]


class Command(BaseCommand):
    help = "Create the first revision, groups, demo users and schedule; queue demo videos."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--no-demo-videos", action="store_true", help="queue no demo videos")

    def handle(self, *args, **options) -> None:
        config = load_config(settings.FEEDBACKLOOP_CONFIG_PATH)
        active = services.revision_ensure_active(params=config.params)
        self.stdout.write(f"active revision: r{active.number}")

        reviewer_group, _ = Group.objects.get_or_create(name="reviewer")
        reviewer_group.permissions.add(*self._perms(REVIEWER_PERMS))
        admin_group, _ = Group.objects.get_or_create(name="admin")
        admin_group.permissions.add(*self._perms(["generation.approve_configrevision"]))

        admin_user = self._user("DEMO_ADMIN", "admin", "admin-pass-123", staff=True)
        admin_user.groups.add(admin_group)
        reviewer = self._user("DEMO_REVIEWER", "reviewer", "reviewer-pass-123", staff=False)
        reviewer.groups.add(reviewer_group)

        if improver_schedule_ensure(every_minutes=config.feedback.analysis_frequency_minutes):
            self.stdout.write(
                f"improver scheduled every {config.feedback.analysis_frequency_minutes} min"
            )
        experiment_schedule_ensure(every_minutes=5)

        if options["no_demo_videos"]:
            return
        for index, prompt in enumerate(DEMO_PROMPTS, start=1):
            generation, created = services.generation_request(
                prompt=prompt, idempotency_key=f"demo-{index}", requested_by=admin_user
            )
            if not created and generation.status == Generation.Status.QUEUED:
                # Queued on an earlier run whose worker never got to it: ask again. The task
                # claims the row atomically, so a duplicate message renders nothing twice.
                services.generation_enqueue(generation=generation)
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
