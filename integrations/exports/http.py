"""An export as a streamed HTTP download (the admin's actions and the staff API)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.utils import timezone

from integrations.exports import CONTENT_TYPES, ExportFilters, export_stream


def export_response(
    *, kind: str, fmt: str, filters: ExportFilters, label: str
) -> StreamingHttpResponse:
    """Bytes go out as they are written: memory stays flat whatever the export's size."""
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        export_stream(kind=kind, fmt=fmt, filters=filters), content_type=CONTENT_TYPES[fmt]
    )
    response["Content-Disposition"] = f'attachment; filename="{label}-{kind}-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
