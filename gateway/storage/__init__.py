"""Blob storage: one small interface (base.BlobStore) with one implementation (s3.S3BlobStore)."""

from __future__ import annotations

import threading

from gateway.storage.base import MIN_PART_SIZE, BlobStore, ObjectStat, StorageError, StorageUnavailable
from gateway.storage.s3 import S3BlobStore, S3Config

__all__ = [
    "MIN_PART_SIZE",
    "BlobStore",
    "ObjectStat",
    "StorageError",
    "StorageUnavailable",
    "get_blob_store",
    "reset_blob_stores",
]

_stores: dict[tuple, S3BlobStore] = {}
_lock = threading.Lock()


def get_blob_store(config: S3Config | None = None) -> BlobStore:
    """The store for a target; the platform bucket (settings.GATEWAY_S3) when none is given."""
    if config is None:
        from django.conf import settings

        config = S3Config.from_settings(settings.GATEWAY_S3)
    key = config.identity()
    with _lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = S3BlobStore(config)
        return store


def reset_blob_stores() -> None:
    """Forget cached stores (after settings change, in tests)."""
    with _lock:
        _stores.clear()
