"""What the phases of a registry rebuild share: the report, the context, bounded reads (docs/decisions/0005)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from accounts.models import Tenant
from gateway.registry.models import Blob
from gateway.storage import BlobStore, ObjectStat, StorageError, StorageUnavailable

log = logging.getLogger("gateway.registry.services.rebuild")  # one log for the whole rebuild

CHUNK = 500  # rows per bulk write, objects per parallel read round
READERS = 8  # parallel GET/HEAD requests
MAX_INDEX_OBJECT_BYTES = 64 * 1024
MAX_REPORTED_PROBLEMS = 1000

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class Counts:
    restored: int = 0
    kept: int = 0
    missing: int = 0


@dataclass
class RebuildReport:
    """What a rebuild did: per kind, rows restored / kept / not restorable, and why not."""

    tenant: str
    tenant_id: int
    source_tenant_id: int
    blobs: Counts = field(default_factory=Counts)
    repositories: Counts = field(default_factory=Counts)
    manifests: Counts = field(default_factory=Counts)
    tags: Counts = field(default_factory=Counts)
    # Index, manifest and tag objects copied under the tenant's own prefix (--from-tenant-id).
    objects_written: int = 0
    problems: list[dict[str, str]] = field(default_factory=list)

    def problem(self, kind: str, key: str, reason: str, **details: str) -> None:
        """Note an object that was not restored (and count it as missing)."""
        getattr(self, {"blob": "blobs", "repository": "repositories", "manifest": "manifests", "tag": "tags"}[kind]).missing += 1
        self.problems.append({"kind": kind, "key": key, "reason": reason, **details})
        log.warning("rebuild: %s %s not restored: %s", kind, key, reason)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (problems capped at MAX_REPORTED_PROBLEMS)."""
        counts = {k: vars(getattr(self, k)) for k in ("blobs", "repositories", "manifests", "tags")}
        return {
            "tenant": self.tenant,
            "tenant_id": self.tenant_id,
            "source_tenant_id": self.source_tenant_id,
            **counts,
            "objects_written": self.objects_written,
            "complete": not self.problems,
            "problems": self.problems[:MAX_REPORTED_PROBLEMS],
            "problems_total": len(self.problems),
        }


@dataclass
class RepoObjects:
    """One repository's objects found in the bucket."""

    manifests: dict[str, str] = field(default_factory=dict)  # digest -> key
    tags: dict[str, ObjectStat] = field(default_factory=dict)  # tag -> tag object


@dataclass
class RebuildContext:
    """One rebuild's tenant, source prefix, store, report and reader pool."""

    tenant: Tenant
    source: int
    store: BlobStore
    report: RebuildReport
    pool: ThreadPoolExecutor
    blobs: dict[str, Blob] = field(default_factory=dict)  # the tenant's blobs after phase 1

    @property
    def reanchor(self) -> bool:
        return self.source != self.tenant.pk


def chunks(items: list[T], size: int = CHUNK) -> Iterable[list[T]]:
    """`items` in lists of at most `size`."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def read_bounded(store: BlobStore, key: str, limit: int) -> bytes:
    """A small object's bytes. ValueError when it is too large or gone; an outage propagates (retry the run)."""
    data = bytearray()
    try:
        for chunk in store.open_read(key):
            data += chunk
            if len(data) > limit:
                raise ValueError(f"object is larger than {limit} bytes")
    except StorageUnavailable:
        raise
    except StorageError as exc:  # e.g. deleted between the listing and the read
        raise ValueError(f"cannot read {key}: {exc}") from None
    return bytes(data)


def json_parse(data: bytes) -> Any:
    """json.loads that reports nesting too deep for Python's parser as a ValueError, like any other bad JSON."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def parallel(ctx: RebuildContext, fn: Callable[[T], R], items: list[T]) -> list[R]:
    """`fn` over `items` on the rebuild's reader pool, results in order."""
    return list(ctx.pool.map(fn, items))
