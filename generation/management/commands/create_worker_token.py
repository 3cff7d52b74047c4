"""Make an API token for a remote generator worker and print its key, once.

    python manage.py create_worker_token gpu-box-1 > gpu-box-1.key

The key goes to stdout alone (easy to capture); the explanation goes to stderr. Only a hash
is stored: a lost key cannot be shown again — revoke it in the admin and make a new one.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from feedbackloop.errors import DomainError
from generation.services.tokens import worker_token_create


class Command(BaseCommand):
    help = "Create an API token for a generator worker; prints the key once."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="the worker's name, e.g. gpu-box-1")
        parser.add_argument(
            "--pipelines",
            default=None,
            help="comma-separated pipeline slugs or patterns the worker may serve and register "
            "(e.g. 'diffusers-*'; '*' for all); default: the default pipeline",
        )
        parser.add_argument("--created-by", help="username recorded as the token's creator")

    def handle(self, *args, **options) -> None:
        creator = None
        if options["created_by"]:
            creator = get_user_model().objects.filter(username=options["created_by"]).first()
            if creator is None:
                raise CommandError(f"no user named {options['created_by']!r}")
        try:
            pipelines = (options["pipelines"] or settings.FEEDBACKLOOP_DEFAULT_PIPELINE).split(",")
            token, key = worker_token_create(
                name=options["name"],
                pipelines=[p.strip() for p in pipelines if p.strip()],
                created_by=creator,
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(
            f"Token {token.prefix}… for worker {token.name!r}, serving "
            f"{', '.join(token.pipelines)}. Store the key now: it is not kept "
            "and will not be shown again."
        )
        self.stdout.write(key)
