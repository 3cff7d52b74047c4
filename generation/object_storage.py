"""Presigned URLs and in-bucket copies, when media lives in S3-compatible object storage.

Only a storage that can presign (django-storages' S3Storage: MEDIA_STORAGE=s3) offers them;
on local disk ``presigning`` is False and callers keep the web host in the data path.
"""

from __future__ import annotations

from typing import Any

from django.core.files.storage import default_storage


def presigning(storage: Any = None) -> bool:
    """Can this storage hand out presigned URLs (an S3 bucket)?"""
    storage = storage if storage is not None else default_storage
    return bool(getattr(storage, "bucket_name", None)) and hasattr(storage, "bucket")


def _key(storage: Any, name: str) -> str:
    # The storage's own mapping of a name to a key (its location prefix, cleaned).
    from storages.utils import clean_name

    return storage._normalize_name(clean_name(name))


def presign_expiry(storage: Any = None) -> int:
    storage = storage if storage is not None else default_storage
    return int(getattr(storage, "querystring_expire", 3600))


def presigned_put(name: str, storage: Any = None) -> str:
    """A URL that accepts one PUT of the object ``name`` until it expires."""
    storage = storage if storage is not None else default_storage
    return storage.bucket.meta.client.generate_presigned_url(
        "put_object",
        Params={"Bucket": storage.bucket_name, "Key": _key(storage, name)},
        ExpiresIn=presign_expiry(storage),
    )


def presigned_get(name: str, storage: Any = None) -> str:
    """A URL that serves the object ``name`` (with Range) until it expires."""
    storage = storage if storage is not None else default_storage
    return storage.url(name)


def copy_within(source: str, target: str, storage: Any = None) -> str:
    """Copy an object to another name inside the bucket (no bytes through this host)."""
    storage = storage if storage is not None else default_storage
    storage.bucket.meta.client.copy(
        {"Bucket": storage.bucket_name, "Key": _key(storage, source)},
        storage.bucket_name,
        _key(storage, target),
    )
    return target
