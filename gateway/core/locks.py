"""Named locks in PostgreSQL (advisory locks): no extra service, and nothing to expire by hand.

- `advisory_lock(name)` is a session-level *try* lock held for a `with` block. It belongs to the
  database connection, so a worker that is killed (SIGKILL, OOM, lost host) releases it the
  moment PostgreSQL notices the connection is gone: the "TTL" is the holder's life, which is
  the right one for "only one GC of this tenant at a time" (docs/decisions/0007).
- `advisory_xact_locks(names)` takes transaction-level locks, in one sorted order so that two
  holders of overlapping sets never deadlock; COMMIT or ROLLBACK frees them. `advisory_xact_lock_within`
  takes one, but gives up after a bounded wait.

Names are hashed to PostgreSQL's 64-bit lock space; a collision only makes two unrelated
holders wait for each other, never lets two holders of the same name in.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from django.db import DatabaseError, OperationalError, connection, transaction


def lock_id(name: str) -> int:
    """The signed 64-bit advisory lock id of a name (stable across processes and versions)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"lock name must be a non-empty string, got {name!r}")
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)


@contextmanager
def advisory_lock(name: str, *, wait: bool = False) -> Iterator[bool]:
    """Take the session lock `name` for the block: a try (yields False, holding nothing, when another holder has it),
    or with `wait` until it is free (yields True)."""
    key = lock_id(name)
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [key])
            cursor.fetchone()
            taken = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            taken = bool(cursor.fetchone()[0])
    try:
        yield taken
    finally:
        if taken and connection.connection is not None and not connection.needs_rollback:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:
                # An aborted transaction: the lock goes with the connection (or at its next unlock-all).
                connection.close_if_unusable_or_obsolete()


def advisory_xact_locks(names: Iterable[str]) -> int:
    """Block until every lock in `names` is held by the current transaction (sorted order); returns how many."""
    if not connection.in_atomic_block:
        raise RuntimeError("advisory_xact_locks needs a transaction (wrap the caller in transaction.atomic())")
    keys = sorted({lock_id(n) for n in names})
    if keys:
        with connection.cursor() as cursor:
            # unnest keeps the array's (sorted) order, so locks are taken in that order.
            cursor.execute("SELECT pg_advisory_xact_lock(k) FROM unnest(%s::bigint[]) AS k", [keys])
            cursor.fetchall()
    return len(keys)


def advisory_xact_lock_within(name: str, *, wait_ms: int) -> bool:
    """Take the transaction lock `name`, waiting at most `wait_ms` for its holder; False (nothing held) if it did not come."""
    if not connection.in_atomic_block:
        raise RuntimeError("advisory_xact_lock_within needs a transaction (wrap the caller in transaction.atomic())")
    try:
        with transaction.atomic(), connection.cursor() as cursor:  # a savepoint: a timeout must not abort the caller's work
            cursor.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(wait_ms)}ms"])
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_id(name)])
            cursor.execute("SELECT set_config('lock_timeout', '0', true)")
    except OperationalError as exc:
        if getattr(exc.__cause__, "sqlstate", None) != "55P03":  # lock_not_available: the wait ran out
            raise
        return False
    return True


__all__ = ["advisory_lock", "advisory_xact_lock_within", "advisory_xact_locks", "lock_id"]
