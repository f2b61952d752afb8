"""What every Redis-backed counter shares: a client per URL with short timeouts, Lua scripts sent once, fail-open logging.

The request-path limiters (the admin API's throttle, the login throttle, the registry's pull limits)
count in Redis with one script per decision (EVALSHA: the script's body crosses the network once per
process and client) and let requests through when Redis cannot answer, saying so in the log at most
every WARN_EVERY_SECONDS so that an outage does not flood it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

import redis
from redis.commands.core import AsyncScript, Script

TIMEOUT_SECONDS = 0.5  # a request waits at most this long for a sick Redis
WARN_EVERY_SECONDS = 30.0

_clients: dict[tuple[str, float], redis.Redis] = {}
_clients_lock = threading.Lock()


def redis_client(url: str, *, timeout: float = TIMEOUT_SECONDS) -> redis.Redis:
    """The process's client for `url` (one connection pool per URL and timeout)."""
    key = (url, timeout)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    return client


class RedisScript:
    """A Lua script run with EVALSHA on whichever client it is given (loaded again by redis-py after a NOSCRIPT)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._registered: dict[redis.Redis, AsyncScript | Script] = {}

    def __call__(self, client: redis.Redis, *, keys: Sequence[str], args: Sequence[str | int | float | bytes]) -> object:
        script = self._registered.get(client)
        if script is None:
            script = self._registered[client] = client.register_script(self.source)
        return script(keys=list(keys), args=list(args))


class FailOpenLog:
    """One warning per WARN_EVERY_SECONDS for a limiter that lets requests through while Redis is down."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self._last = -WARN_EVERY_SECONDS

    def __call__(self, exc: Exception, detail: str = "") -> None:
        now = time.monotonic()
        if now - self._last >= WARN_EVERY_SECONDS:
            self._last = now
            where = f" ({detail})" if detail else ""
            self.logger.warning("%s unavailable%s, letting requests through: %s", self.what, where, exc)
