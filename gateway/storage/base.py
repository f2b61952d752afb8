"""The blob store interface. Everything above storage talks to this, never to boto3."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# S3's smallest multipart part (all but the last); Storj's segments are 64 MiB, parts use those.
MIN_PART_SIZE = 5 * 1024 * 1024


class StorageError(Exception):
    """The store refused a request (a bug or a misconfiguration, not an outage)."""


class StorageUnavailable(StorageError):
    """The store could not be reached or is overloaded: retry later (HTTP 503)."""


@dataclass(frozen=True)
class ObjectStat:
    key: str
    size: int
    etag: str
    last_modified: datetime | None = None


@dataclass(frozen=True)
class PendingUpload:
    key: str
    upload_id: str
    initiated: datetime | None


class BlobStore(Protocol):
    bucket: str
    part_size: int

    def stat(self, key: str) -> ObjectStat | None: ...

    def open_read(self, key: str, *, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def read_small(self, key: str) -> bytes: ...

    def put(self, key: str, data: bytes, *, content_type: str = "application/octet-stream", if_absent: bool = False) -> str: ...

    def put_json(self, key: str, doc: dict[str, Any], *, if_absent: bool = False) -> str: ...

    def delete(self, keys: list[str]) -> None: ...

    def presign_get(self, key: str, *, expires: int, content_type: str | None = None) -> str: ...

    def multipart_start(self, key: str) -> str: ...

    def multipart_put_part(self, key: str, upload_id: str, part_number: int, data: bytes | bytearray | memoryview) -> str: ...

    def multipart_complete(self, key: str, upload_id: str, parts: list[tuple[int, str]]) -> None: ...

    def multipart_abort(self, key: str, upload_id: str) -> None: ...

    def list(self, prefix: str) -> Iterator[ObjectStat]: ...

    def list_multipart(self, prefix: str) -> Iterator[PendingUpload]: ...

    def check(self) -> None: ...

    def bucket_ensure(self) -> None: ...
