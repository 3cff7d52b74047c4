"""`manage.py import_videos MANIFEST [--format csv|jsonl] [--user NAME]`.

Imports each row of a CSV (with a header) or JSONL manifest as a generation ready for review;
relative paths are read from the manifest's folder and must lie under IMPORT_ALLOWED_ROOTS.
Prints one line per row (its line number and outcome); exits non-zero when any row failed, after
importing the good ones. The format of the manifest: integrations/imports.py, docs/export.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from feedbackloop.errors import DomainError
from integrations.imports import manifest_import, manifest_rows


class Command(BaseCommand):
    help = "Import videos made elsewhere (a CSV or JSONL manifest) as generations for review."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("manifest", help="a .csv (with a header row) or .jsonl file")
        parser.add_argument(
            "--format", choices=["csv", "jsonl"], dest="fmt", help="default: from the content"
        )
        parser.add_argument("--user", help="the username recorded as requesting the imports")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["manifest"])
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        fmt = options["fmt"]
        if fmt is None and path.suffix.lower() in (".csv", ".jsonl", ".ndjson"):
            fmt = "csv" if path.suffix.lower() == ".csv" else "jsonl"
        user = None
        if options["user"]:
            user = get_user_model().objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"no user {options['user']!r}")
        counts = {"imported": 0, "duplicate": 0, "error": 0}
        try:
            rows = manifest_rows(text, fmt=fmt)
            for result in manifest_import(
                rows=rows, requested_by=user, base_dir=path.resolve().parent
            ):
                counts[result.status] += 1
                detail = result.generation_id or ""
                if result.message:
                    detail = f"{detail} {result.message}".strip()
                line = f"line {result.line}: {result.status} {detail}".rstrip()
                if result.status == "error":
                    self.stderr.write(line)
                else:
                    self.stdout.write(line)
        except DomainError as exc:
            raise CommandError(exc.message) from exc
        summary = (
            f"{counts['imported']} imported, {counts['duplicate']} already imported, "
            f"{counts['error']} failed"
        )
        if counts["error"]:
            raise CommandError(summary)
        self.stdout.write(summary)
