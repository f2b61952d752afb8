"""The request path's two Redis transports (docs/decisions/0054), against the real Redis: a script on the thread's own
connection, and commands written without waiting for a reply."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import redis
from django.conf import settings

from gateway.core.redis import RedisScript, ReplylessSender, redis_client

KEY = "wharf:test:transports"
_INCR = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")


@pytest.fixture
def client():
    c = redis.Redis.from_url(settings.REDIS_URL)
    c.delete(KEY)
    yield c
    c.delete(KEY)
    c.close()


def _wait_for(predicate, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def _kill_connections(client: redis.Redis, name_hint: str = "") -> int:
    """CLIENT KILL every other connection on the test db (as a Redis restart or an idle timeout would close them)."""
    me = client.client_id()
    db = client.connection_pool.connection_kwargs.get("db", 0)
    killed = 0
    for info in client.client_list():
        if int(info["id"]) != me and int(info.get("db", -1)) == db:
            killed += client.client_kill_filter(_id=int(info["id"]))
    return killed


def test_a_script_answers_on_the_threads_own_connection_and_is_loaded_again_after_a_flush(client):
    target = redis_client(settings.REDIS_URL)
    assert _INCR(target, keys=[KEY], args=[2]) == 2
    client.script_flush()  # as after a Redis restart: EVALSHA answers NOSCRIPT
    assert _INCR(target, keys=[KEY], args=[3]) == 5
    assert int(client.get(KEY)) == 5


def test_a_script_reconnects_after_redis_closed_its_connection_and_each_thread_has_its_own(client):
    target = redis_client(settings.REDIS_URL)
    assert _INCR(target, keys=[KEY], args=[1]) == 1
    assert _kill_connections(client) >= 1
    with pytest.raises(redis.ConnectionError):
        _INCR(target, keys=[KEY], args=[1])  # the write or read on the closed socket fails: the caller fails open
    assert _INCR(target, keys=[KEY], args=[1]) == 2  # a new connection, and the failed call counted nothing
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(_INCR(target, keys=[KEY], args=[10]))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [12, 22, 32, 42, 52, 62, 72, 82]  # type: ignore[type-var]


def test_a_script_against_no_redis_raises_a_redis_error_quickly():
    dead = redis_client("redis://127.0.0.1:1/0")
    started = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        _INCR(dead, keys=[KEY], args=[1])
    assert time.monotonic() - started < 2


def test_replyless_commands_arrive_in_the_order_written_and_nothing_is_answered(client):
    sender = ReplylessSender(settings.REDIS_URL)
    for n in range(500):
        sender.send("RPUSH", KEY, n)
    # A burst this size (20 kB) may be applied after a later command of another connection (Redis reads 16 kB of one
    # client at a time): what is guaranteed is the order, and that nothing is answered on the sender's connection
    # (a reply would sit unread in its socket).
    assert _wait_for(lambda: client.llen(KEY) == 500)
    assert [int(v) for v in client.lrange(KEY, 0, -1)] == list(range(500))
    assert sender._connection is not None and not sender._connection.can_read(timeout=0.05)


def test_replyless_sends_from_many_threads_lose_nothing(client):
    sender = ReplylessSender(settings.REDIS_URL)

    def push(t: int) -> None:
        for n in range(200):
            sender.send("RPUSH", KEY, f"{t}:{n}")

    threads = [threading.Thread(target=push, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert _wait_for(lambda: client.llen(KEY) == 1600)
    values = [v.decode() for v in client.lrange(KEY, 0, -1)]
    assert len(values) == len(set(values)) == 1600
    for t in range(8):  # each thread's own commands in the order it wrote them
        assert [v for v in values if v.startswith(f"{t}:")] == [f"{t}:{n}" for n in range(200)]


def test_a_replyless_connection_redis_closed_is_replaced_before_the_next_write(client):
    sender = ReplylessSender(settings.REDIS_URL)
    sender.send("RPUSH", KEY, "before")
    assert _wait_for(lambda: client.llen(KEY) == 1)
    assert _kill_connections(client) >= 1
    assert _wait_for(lambda: sender._connection is not None and _closed(sender))
    sender.send("RPUSH", KEY, "after")  # noticed as closed (readable), replaced, written: nothing lost
    assert _wait_for(lambda: client.llen(KEY) == 2)
    assert [v.decode() for v in client.lrange(KEY, 0, -1)] == ["before", "after"]


def _closed(sender: ReplylessSender) -> bool:
    try:
        return bool(sender._connection.can_read(timeout=0))  # type: ignore[union-attr]
    except (redis.RedisError, OSError):
        return True


def test_a_replyless_send_to_no_redis_raises_a_redis_error():
    sender = ReplylessSender("redis://127.0.0.1:1/0")
    with pytest.raises(redis.ConnectionError):
        sender.send("RPUSH", KEY, "x")


def test_what_a_process_wrote_arrives_even_if_it_is_killed_right_after(client):
    """SIGKILL straight after the writes: the kernel still delivers what the socket accepted."""
    pid = os.fork()
    if pid == 0:  # the child: a fresh sender (never the parent's socket), then killed without any cleanup
        try:
            sender = ReplylessSender(settings.REDIS_URL)
            for n in range(1000):
                sender.send("RPUSH", KEY, n)
        finally:
            os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert _wait_for(lambda: client.llen(KEY) == 1000)
    assert [int(v) for v in client.lrange(KEY, 0, -1)] == list(range(1000))


def test_a_forked_child_never_writes_on_its_parents_connection(client):
    sender = ReplylessSender(settings.REDIS_URL)
    sender.send("RPUSH", KEY, "parent")
    parent_connection = sender._connection
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sender.send("RPUSH", KEY, "child")
            code = 0 if sender._connection is not parent_connection else 3  # 0: its own
        finally:
            os.write(write, bytes([code]))
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x00"  # the child made its own connection
    sender.send("RPUSH", KEY, "parent again")
    assert sender._connection is parent_connection
    assert _wait_for(lambda: client.llen(KEY) == 3)
    assert sorted(v.decode() for v in client.lrange(KEY, 0, -1)) == ["child", "parent", "parent again"]
