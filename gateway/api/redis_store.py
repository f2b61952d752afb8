"""The admin API's Redis client (throttle counters, Idempotency-Key records): one per URL and process, short timeouts."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

TIMEOUT_SECONDS = 0.5  # a request waits at most this long for a sick Redis
_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def api_redis() -> redis.Redis:
    """The client for settings.REDIS_URL (read at each call, so tests that change it are seen)."""
    url = settings.REDIS_URL
    with _lock:
        if url not in _clients:
            _clients[url] = redis.Redis.from_url(url, socket_timeout=TIMEOUT_SECONDS, socket_connect_timeout=TIMEOUT_SECONDS)
        return _clients[url]
