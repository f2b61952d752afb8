"""The admin API's Redis client (throttle counters, Idempotency-Key records): one per URL and process, short timeouts."""

from __future__ import annotations

import redis
from django.conf import settings

from gateway.core.redis import redis_client


def api_redis() -> redis.Redis:
    """The client for settings.REDIS_URL (read at each call, so tests that change it are seen)."""
    return redis_client(settings.REDIS_URL)
