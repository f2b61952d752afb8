"""The project's one task decorator (house style: S's single decorator, H's thin tasks).

Every Celery task of ours is declared with `@task(name=...)` so that all of them share
the same delivery semantics: an explicit, stable name (renaming a module must not orphan
queued messages), `acks_late` (a worker that dies mid-task leaves the message to be
redelivered, which is why tasks must be idempotent), no result backend traffic, retries
with exponential backoff on the exceptions that mean "try again later", and one start /
end log line with the task name and duration.

Task bodies stay plain functions: the decorated object is still callable directly (tests,
shell) and then runs once, without retrying, re-raising whatever the body raised.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

from celery import Task, current_app

log = logging.getLogger("gateway.tasks")

F = TypeVar("F", bound=Callable[..., Any])

BACKOFF_BASE_SECONDS = 2.0
BACKOFF_MAX_SECONDS = 600.0


def backoff_seconds(retries: int, *, base: float = BACKOFF_BASE_SECONDS, cap: float = BACKOFF_MAX_SECONDS) -> float:
    """Delay before retry number `retries + 1`: base·2^retries capped at `cap`, minus up to 25 % jitter."""
    delay = min(cap, base * (2 ** max(retries, 0)))
    # Jitter spreads out the retries of many tasks that failed on the same outage.
    return round(delay * random.uniform(0.75, 1.0), 3)


class WharfTask(Task):
    """Celery Task that sends to its declared queue (Celery deprecates the `queue` attribute for routing)."""

    wharf_queue = "celery"

    def apply_async(
        self,
        args: Any = None,
        kwargs: Any = None,
        task_id: str | None = None,
        producer: Any = None,
        link: Any = None,
        link_error: Any = None,
        shadow: str | None = None,
        **options: Any,
    ) -> Any:
        """Send the task; to its declared queue unless the caller names one."""
        if not options.get("queue") and not options.get("routing_key"):
            options["queue"] = self.wharf_queue
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, shadow, **options)


def _exception_classes(value: Any, argument: str) -> tuple[type[BaseException], ...]:
    classes = tuple(value)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(f"task {argument} must hold exception classes, got {cls!r}")
    return classes


def _validated(name: str, queue: str, max_retries: int) -> None:
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ValueError(f"task name must be a non-empty string without surrounding spaces, got {name!r}")
    if not isinstance(queue, str) or not queue:
        raise ValueError(f"task {name}: queue must be a non-empty string, got {queue!r}")
    if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
        raise ValueError(f"task {name}: max_retries must be a non-negative integer, got {max_retries!r}")


def task(
    *,
    name: str,
    queue: str = "celery",
    retry_on: tuple[type[BaseException], ...] = (),
    exclude: tuple[type[BaseException], ...] = (),
    max_retries: int = 5,
) -> Callable[[F], Task]:
    """Declare a Celery task: explicit name, acks_late, no result, backoff retries on `retry_on` but not `exclude`."""
    _validated(name, queue, max_retries)
    retry_classes = _exception_classes(retry_on, "retry_on")
    excluded = _exception_classes(exclude, "exclude")

    def decorate(fn: F) -> Task:
        if not callable(fn):
            raise TypeError(f"@task({name!r}) must decorate a function, got {fn!r}")
        celery_task: Task

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            request = celery_task.request
            attempt = (request.retries or 0) + 1
            extra = {"task_name": name, "task_id": request.id, "attempt": attempt}
            started = time.monotonic()
            log.info("task %s started (attempt %d)", name, attempt, extra=extra)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                extra["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
                retryable = isinstance(exc, retry_classes) and not isinstance(exc, excluded)
                if not retryable or request.called_directly or attempt > max_retries:
                    log.error("task %s failed after %.3fs: %r", name, extra["duration_ms"] / 1000, exc, extra=extra)
                    raise
                countdown = backoff_seconds(attempt - 1)
                log.warning(
                    "task %s failed after %.3fs, retry %d/%d in %.1fs: %r",
                    name,
                    extra["duration_ms"] / 1000,
                    attempt,
                    max_retries,
                    countdown,
                    exc,
                    extra=extra,
                )
                raise celery_task.retry(exc=exc, countdown=countdown) from exc
            extra["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
            log.info("task %s finished in %.3fs", name, extra["duration_ms"] / 1000, extra=extra)
            return result

        celery_task = _registered(run, fn, name=name, queue=queue, max_retries=max_retries)
        return celery_task

    return decorate


def _registered(run: Callable[..., Any], fn: Callable[..., Any], *, name: str, queue: str, max_retries: int) -> Task:
    """Register the wrapper `run` of `fn` with the current Celery app, with the house options (acks_late, no result)."""
    # Celery checks .delay()/.apply_async() arguments against the wrapper's signature.
    run.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    # The current app is gateway.celery's (gateway/__init__.py creates it first); naming it here
    # would make the kernel import the Celery app and, through its beat schedule, every app above.
    registered: Task = current_app.task(
        name=name,
        base=WharfTask,
        wharf_queue=queue,
        acks_late=True,
        ignore_result=True,
        max_retries=max_retries,
    )(run)
    return registered


__all__ = ["WharfTask", "backoff_seconds", "task"]
