"""Celery tasks of the gateway. Thin: each validates nothing itself and calls one service.

Services are imported inside the task bodies, so importing this module (Celery autodiscovery,
beat) loads no domain code.
"""

from __future__ import annotations

import redis
from django.db import DatabaseError

from gateway.core.tasking import task

# A backlog is drained by the task re-queueing itself, at most this many times per run.
USAGE_FLUSH_MAX_REQUEUES = 20


@task(name="gateway.usage.flush", retry_on=(redis.RedisError, DatabaseError))
def usage_flush_task(*, max_items: int = 5000, requeues_left: int = USAGE_FLUSH_MAX_REQUEUES) -> int:
    """Flush buffered usage events into PostgreSQL; re-queues itself while full batches come out (replay-safe)."""
    from gateway.registry.services.usage import usage_events_flush

    taken = usage_events_flush(max_items=max_items)
    if taken >= max_items and requeues_left > 0:
        usage_flush_task.apply_async(kwargs={"max_items": max_items, "requeues_left": requeues_left - 1})
    return taken
