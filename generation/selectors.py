"""Reads for revisions and generations."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from generation.models import ConfigRevision, Generation


def revision_active() -> ConfigRevision | None:
    return ConfigRevision.objects.filter(status=ConfigRevision.Status.ACTIVE).first()


def generation_get(*, generation_id: object) -> Generation | None:
    """The generation with this id, or None for an unknown or malformed id."""
    try:
        return Generation.objects.select_related("revision").filter(pk=generation_id).first()
    except (ValidationError, ValueError, TypeError):
        return None


def generations_finished() -> QuerySet[Generation]:
    return Generation.objects.filter(status=Generation.Status.SUCCEEDED)
