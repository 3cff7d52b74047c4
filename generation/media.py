"""Where a generation's files live in media storage, and a local path to read one from.

One naming rule for every writer (the server's renderer, a worker's upload, an import): the
video is ``generations/<id>.mp4`` and the poster ``generations/<id>.<ext>``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.core.files.storage import FileSystemStorage, default_storage

FOLDER = "generations"


def video_name(generation_id: Any) -> str:
    return f"{FOLDER}/{generation_id}.mp4"


def poster_name(generation_id: Any, extension: str = "jpg") -> str:
    return f"{FOLDER}/{generation_id}.{extension}"


POSTER_EXTENSIONS = ("jpg", "png", "webp")


def remove_files(generation_id: Any) -> list[str]:
    """Delete every file stored for a generation (video, poster, and on local storage the
    partial renders named ``.<id>.mp4.<hex>.part``); returns the names removed."""
    storage = default_storage
    names = [video_name(generation_id), *(poster_name(generation_id, e) for e in POSTER_EXTENSIONS)]
    removed = [name for name in names if storage.exists(name)]
    for name in removed:
        storage.delete(name)
    if isinstance(storage, FileSystemStorage):
        folder = Path(storage.path(FOLDER))
        for part in folder.glob(f".{generation_id}.*.part"):
            part.unlink(missing_ok=True)
            removed.append(f"{FOLDER}/{part.name}")
    return removed


@contextmanager
def local_path(field_file: Any) -> Iterator[str]:
    """A filesystem path for a stored file: the file itself on local storage, else a temporary
    copy streamed from the storage (removed on exit)."""
    storage = field_file.storage
    if isinstance(storage, FileSystemStorage):
        yield storage.path(field_file.name)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / Path(field_file.name).name
        with storage.open(field_file.name, "rb") as src, open(path, "wb") as dst:
            for chunk in iter(lambda: src.read(1 << 20), b""):
                dst.write(chunk)
        yield str(path)
