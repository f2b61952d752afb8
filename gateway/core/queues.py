"""Celery queue depths, read from the Redis broker (docs/decisions/0023): for operators watching a backlog.

The queues are the ones the app routes to: Celery's default queue, each task's declared queue
(core/tasking.py; the task modules are imported once per process to learn them), each beat entry's
and each route's `queue`, and any declared in `task_queues`. kombu's Redis transport keeps a queue as a list
named after it plus one list per priority step (`<queue>\\x06\\x16<step>`), and messages delivered
to a worker but not yet acknowledged (acks_late) in one `unacked` hash; both names are kombu's.
"""

from __future__ import annotations

import functools
from typing import Any

import redis
from celery import current_app
from django.conf import settings
from kombu.transport.redis import PRIORITY_STEPS, Channel

from gateway.core.errors import ServiceUnavailable


@functools.cache
def _tasks_imported() -> None:
    """Run Celery's autodiscovery once: a web process has not imported the task modules."""
    current_app.loader.import_default_modules()


def celery_queue_names() -> list[str]:
    """The queues the app sends tasks to, sorted."""
    conf = current_app.conf
    _tasks_imported()
    names = {conf.task_default_queue}
    names.update(getattr(task, "wharf_queue", None) or conf.task_default_queue for task in current_app.tasks.values())
    for entry in (conf.beat_schedule or {}).values():
        names.add((entry.get("options") or {}).get("queue") or conf.task_default_queue)
    routes: Any = conf.task_routes or {}
    for route in routes.values() if isinstance(routes, dict) else []:
        if isinstance(route, dict) and route.get("queue"):
            names.add(route["queue"])
    names.update(queue.name for queue in conf.task_queues or ())
    return sorted(names)


def celery_queue_depths() -> tuple[dict[str, int], int]:
    """({queue: messages waiting}, messages delivered to workers and not yet acknowledged), from the broker.

    Raises ServiceUnavailable (503) when the broker cannot be reached, instead of letting redis's error become a 500.
    """
    names = celery_queue_names()
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        with client.pipeline(transaction=False) as pipe:
            for name in names:
                for step in PRIORITY_STEPS:
                    pipe.llen(f"{name}{Channel.sep}{step}" if step else name)
            pipe.hlen(Channel.unacked_key)
            replies = pipe.execute()
    except redis.RedisError as exc:
        raise ServiceUnavailable("Queue depths are unavailable: the Celery broker (Redis) cannot be reached.") from exc
    finally:
        client.close()
    steps = len(PRIORITY_STEPS)
    depths = {name: sum(replies[i * steps : (i + 1) * steps]) for i, name in enumerate(names)}
    return depths, int(replies[-1])
