"""`manage.py compute_metrics PATH [--script-file FILE] [--json] [--no-ocr]`.

A thin wrapper around videometrics.cli so that the management command and
`python -m videometrics` print the same thing: with --json exactly one JSON object on stdout,
otherwise a readable table. Unusable input exits non-zero with a one-line reason on stderr.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from videometrics import VideoMetricsError
from videometrics.cli import add_arguments, compute, render


class Command(BaseCommand):
    help = "Print the automated quality metrics of a video file."
    # It touches no database and no URL: system checks would only import the whole site.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = compute(
                options["path"],
                script_file=options.get("script_file"),
                ocr=not options.get("no_ocr", False),
                threads=options.get("threads"),
            )
        except VideoMetricsError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(render(result, options.get("json", False)))
