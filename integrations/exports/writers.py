"""Writers per format: rows in, bytes out, a piece at a time.

JSONL is one JSON object per line. Parquet is written with pyarrow's ParquetWriter one row group
at a time into a sink that hands its bytes on as soon as they are written, so neither format
holds more than a row group in memory, and an HTTP response can stream either as it is made.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

JSONL_PIECE_BYTES = 256 * 1024
ROW_GROUP_ROWS = 20_000


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (UUID, Decimal)):
        return str(value) if isinstance(value, UUID) else float(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def jsonl_pieces(rows: Iterable[dict[str, Any]]) -> Iterator[bytes]:
    buffer: list[str] = []
    size = 0
    for row in rows:
        line = json.dumps(row, default=_json_default, ensure_ascii=False) + "\n"
        buffer.append(line)
        size += len(line)
        if size >= JSONL_PIECE_BYTES:
            yield "".join(buffer).encode("utf-8")
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode("utf-8")


# --- Parquet ----------------------------------------------------------------------------------


def _struct_of(names: Iterable[str], value_type: Any) -> Any:
    import pyarrow as pa

    fields = [pa.field(name, value_type) for name in sorted(set(names))]
    # Parquet cannot store a struct without fields: with no names at all the column is left out.
    return pa.struct(fields) if fields else None


def parquet_schema(kind: str, *, keys: dict[str, list[str]]) -> Any:
    """The Arrow schema of a kind; ``keys`` names the fields of its open-ended columns
    (rating dimensions, verdict dimensions, metric names)."""
    import pyarrow as pa

    time = pa.timestamp("us", tz="UTC")
    side = pa.struct(
        [
            ("side", pa.string()),
            ("generation_id", pa.string()),
            ("prompt", pa.string()),
            ("pipeline", pa.string()),
            ("revision", pa.int32()),
            ("params", pa.string()),  # JSON text: each pipeline has its own parameters
            ("video_uri", pa.string()),
        ]
    )
    columns: dict[str, list[tuple[str, Any]]] = {
        "ratings": [
            ("review_id", pa.string()),
            ("created_at", time),
            ("reviewer", pa.string()),
            ("generation_id", pa.string()),
            ("pipeline", pa.string()),
            ("revision", pa.int32()),
            ("ratings", _struct_of(keys.get("ratings", []), pa.int8())),
            ("seconds_spent", pa.float64()),
            ("comments", pa.string()),
        ],
        "issues": [
            ("issue_id", pa.int64()),
            ("created_at", time),
            ("reviewer", pa.string()),
            ("review_id", pa.string()),
            ("generation_id", pa.string()),
            ("pipeline", pa.string()),
            ("revision", pa.int32()),
            ("category", pa.string()),
            ("severity", pa.int8()),
            ("severity_label", pa.string()),
            ("start_s", pa.float64()),
            ("end_s", pa.float64()),
            ("note", pa.string()),
        ],
        "pairs": [
            ("comparison_id", pa.string()),
            ("created_at", time),
            ("reviewer", pa.string()),
            ("prompt", pa.string()),
            ("chosen", side),
            ("rejected", side),
            ("tie", pa.bool_()),
            ("dimensions", _struct_of(keys.get("dimensions", []), pa.string())),
            ("seconds_spent", pa.float64()),
        ],
        "generations": [
            ("generation_id", pa.string()),
            ("created_at", time),
            ("finished_at", time),
            ("status", pa.string()),
            ("prompt", pa.string()),
            ("pipeline", pa.string()),
            ("revision", pa.int32()),
            ("params", pa.string()),  # JSON text
            ("experiment_arm", pa.string()),
            ("backend", pa.string()),
            ("video_uri", pa.string()),
            ("duration_s", pa.float64()),
            ("fps", pa.float64()),
            ("width", pa.int32()),
            ("height", pa.int32()),
            ("codec", pa.string()),
            ("size_bytes", pa.int64()),
            ("generation_seconds", pa.float64()),
            ("cpu_seconds", pa.float64()),
            ("peak_rss_bytes", pa.int64()),
            ("error", pa.string()),
            ("metrics", _struct_of(keys.get("metrics", []), pa.float64())),
            ("worker_metrics", _struct_of(keys.get("worker_metrics", []), pa.float64())),
        ],
    }
    return pa.schema([(name, kind_) for name, kind_ in columns[kind] if kind_ is not None])


def _params_as_text(row: dict[str, Any], kind: str) -> dict[str, Any]:
    if kind == "pairs":
        for side in ("chosen", "rejected"):
            row[side] = {**row[side], "params": json.dumps(row[side]["params"], sort_keys=True)}
    elif kind == "generations":
        row["params"] = json.dumps(row["params"], sort_keys=True)
    return row


class _Sink:
    """A write-only file for ParquetWriter whose bytes are taken away as they come."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        piece = bytes(data)
        self.pieces.append(piece)
        self.position += len(piece)
        return len(piece)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def take(self) -> bytes:
        data, self.pieces = b"".join(self.pieces), []
        return data


def parquet_pieces(rows: Iterable[dict[str, Any]], *, kind: str, schema: Any) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = _Sink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    try:
        group: list[dict[str, Any]] = []
        for row in rows:
            group.append(_params_as_text(row, kind))
            if len(group) >= ROW_GROUP_ROWS:
                writer.write_table(pa.Table.from_pylist(group, schema=schema))
                group = []
                yield sink.take()
        if group:
            writer.write_table(pa.Table.from_pylist(group, schema=schema))
    finally:
        writer.close()  # writes the footer (an empty file is still a valid Parquet file)
    yield sink.take()
