"""`manage.py export_feedback --kind pairs --format jsonl --out pairs.jsonl [filters]`.

Filters: --pipeline SLUG, --revision N (of that pipeline), --since DATE, --until DATE. The file
appears only once complete; the row count and time go to stderr. docs/export.md has the format.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from feedbackloop.errors import DomainError
from integrations.exports import FILTERS, FORMATS, KINDS, export_filters, export_to_file


class Command(BaseCommand):
    help = "Export ratings, issues, preference pairs or generations as JSONL or Parquet."
    # The URLconf's checks would import the analysis stack (scipy) for nothing.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        error = parser.error

        def error_with_filters(message: str) -> None:
            if message.startswith("unrecognized arguments"):
                message += f"; valid filters: {', '.join('--' + f for f in FILTERS)}"
            error(message)

        parser.error = error_with_filters  # type: ignore[method-assign]
        return parser

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--kind", required=True, choices=KINDS)
        parser.add_argument("--format", required=True, choices=FORMATS, dest="fmt")
        parser.add_argument("--out", required=True, help="the file to write")
        parser.add_argument("--pipeline", help="a pipeline's slug")
        parser.add_argument("--revision", help="a revision number of --pipeline")
        parser.add_argument("--since", help="rows created at or after (date or ISO time)")
        parser.add_argument("--until", help="rows created before (a date includes that day)")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.perf_counter()
        try:
            filters = export_filters(
                pipeline=options["pipeline"],
                revision=options["revision"],
                since=options["since"],
                until=options["until"],
            )
            rows = export_to_file(
                kind=options["kind"], fmt=options["fmt"], filters=filters, path=options["out"]
            )
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        self.stderr.write(
            f"exported {rows} {options['kind']} rows to {options['out']} "
            f"in {time.perf_counter() - started:.1f}s"
        )
