"""What every Redis-backed counter shares: a client per URL with short timeouts, Lua scripts sent once, fail-open logging.

The request-path limiters (the admin API's throttle, the login throttle, the registry's pull limits)
count in Redis with one script per decision (EVALSHA: the script's body crosses the network once per
process and client) and let requests through when Redis cannot answer, saying so in the log at most
every WARN_EVERY_SECONDS so that an outage does not flood it.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Sequence

import redis
from redis.connection import ConnectionInterface
from redis.exceptions import NoScriptError

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
    """A Lua script run with EVALSHA on a connection of the calling thread's own (loaded again after a NOSCRIPT).

    A request-path decision costs one write and one read on a socket nobody else uses: no pool
    checkout, no retry wrapper, commands packed and replies parsed by hiredis (docs/decisions/0054).
    redis-py's client-level call took ~90 µs of CPU for what this does in ~13 µs. The client given
    only says where Redis is (its pool's connection settings: address, credentials, db, TLS,
    timeouts); a connection that failed is dropped and the error raised (callers fail open).
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()  # noqa: S324 - Redis names scripts by SHA-1
        self._local = threading.local()

    def _connection(self, client: redis.Redis) -> ConnectionInterface:
        connections: dict[int, ConnectionInterface] | None = getattr(self._local, "connections", None)
        if connections is None or getattr(self._local, "pid", 0) != os.getpid():  # never a parent's socket
            connections = self._local.connections = {}
            self._local.pid = os.getpid()
        connection = connections.get(id(client.connection_pool))
        if connection is None:
            connection = connections[id(client.connection_pool)] = client.connection_pool.make_connection()
        return connection

    def __call__(self, client: redis.Redis, *, keys: Sequence[str], args: Sequence[str | int | float | bytes]) -> object:
        connection = self._connection(client)

        def run(*command: str | int | float | bytes) -> object:
            connection.send_packed_command(connection.pack_command(*command), check_health=False)
            return connection.read_response()

        evalsha = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            try:
                return run(*evalsha)
            except NoScriptError:  # a Redis that restarted or was flushed: load it, once
                run("SCRIPT", "LOAD", self.source)
                return run(*evalsha)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            connection.disconnect()  # reconnected on the next call
            raise


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


class ReplylessSender:
    """Commands whose replies nobody waits for, on one connection per process in CLIENT REPLY OFF mode.

    `send` returns once the command is written to the socket: the request thread never sleeps on
    Redis (docs/decisions/0054). Bytes the kernel accepted are delivered even if this process is
    killed right after (a SIGKILLed process's sockets are closed, not discarded), and the commands
    of a process are applied in the order its threads wrote them. Redis applies them moments later,
    usually before anything another connection sends afterwards, not always (it reads 16 kB of one
    client at a time): a reader of the list must not expect them at once (the event stream's flush,
    every minute, takes whatever has arrived). A connection Redis closed is noticed before the next
    write (it is readable: Redis never writes to it) and replaced; a write that fails raises
    redis.RedisError. What cannot be known: a command written in the instant Redis died.
    """

    def __init__(self, url: str, *, timeout: float = TIMEOUT_SECONDS) -> None:
        self.url = url
        self.timeout = timeout
        self._lock = threading.Lock()
        self._connection: ConnectionInterface | None = None
        self._pid = 0

    def _connect(self) -> ConnectionInterface:
        pool = redis.ConnectionPool.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout)
        connection = pool.make_connection()
        connection.connect()  # AUTH and SELECT, answered
        connection.send_command("CLIENT", "REPLY", "OFF", check_health=False)
        return connection

    def _drop(self) -> None:
        if self._connection is not None:
            self._connection.disconnect()
        self._connection = None

    def send(self, *args: str | bytes | int | float) -> None:
        with self._lock:
            if self._pid != os.getpid():  # a forked child never writes on its parent's socket
                self._connection, self._pid = None, os.getpid()
            connection = self._connection
            if connection is not None:
                try:
                    gone = connection.can_read(timeout=0)  # Redis never writes here: readable means closed
                except (redis.RedisError, OSError):
                    gone = True
                if gone:
                    self._drop()
                    connection = None
            try:
                if connection is None:
                    connection = self._connection = self._connect()
                connection.send_command(*args, check_health=False)
            except redis.RedisError:
                self._drop()
                raise
            except OSError as exc:
                self._drop()
                raise redis.ConnectionError(str(exc)) from exc


_senders: dict[tuple[str, float], ReplylessSender] = {}


def replyless_sender(url: str, *, timeout: float = TIMEOUT_SECONDS) -> ReplylessSender:
    """The process's ReplylessSender for `url`."""
    key = (url, timeout)
    with _clients_lock:
        sender = _senders.get(key)
        if sender is None:
            sender = _senders[key] = ReplylessSender(url, timeout=timeout)
    return sender
