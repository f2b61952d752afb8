"""The @task decorator: options, retries with backoff, exclusions, logging. Tasks are called directly."""

from __future__ import annotations

import json
import logging
import uuid

import pytest
import redis

from gateway.celery import app
from gateway.core.tasking import backoff_seconds, task


class Flaky(ConnectionError):
    pass


class FlakyButFatal(Flaky):
    pass


calls: list[str] = []


@task(name="tests.tasking.flaky", retry_on=(ConnectionError,), exclude=(FlakyButFatal,), max_retries=3)
def flaky(*, fail: int = 0, error: str = "Flaky") -> int:
    """Fails `fail` times with `error`, then returns how often it ran."""
    calls.append(error)
    if len(calls) <= fail:
        raise {"Flaky": Flaky, "FlakyButFatal": FlakyButFatal, "ValueError": ValueError}[error]("boom")
    return len(calls)


@task(name="tests.tasking.audit", queue="audit")
def audited(*, n: int) -> int:
    return n * 2


@pytest.fixture(autouse=True)
def _reset():
    calls.clear()


def test_options_are_set_on_the_celery_task():
    assert app.tasks["tests.tasking.flaky"].name == flaky.name
    assert flaky.name == "tests.tasking.flaky"
    assert flaky.acks_late is True
    assert flaky.ignore_result is True
    assert flaky.max_retries == 3
    assert flaky.wharf_queue == "celery"
    assert audited.wharf_queue == "audit"
    assert flaky.__doc__.startswith("Fails")


def test_called_directly_runs_the_body_once():
    assert audited(n=21) == 42
    assert flaky() == 1
    calls.clear()
    with pytest.raises(Flaky):  # called directly: no retry, the error propagates
        flaky(fail=1)
    assert calls == ["Flaky"]


def test_apply_runs_like_a_worker():
    result = audited.apply(kwargs={"n": 4})
    assert result.successful() and result.get() == 8


def test_retries_with_backoff_until_success(caplog):
    caplog.set_level(logging.INFO, logger="gateway.tasks")
    result = flaky.apply(kwargs={"fail": 2})
    assert result.get() == 3
    assert len(calls) == 3
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.tasks"]
    assert sum("retry" in m for m in messages) == 2
    assert any(m.startswith("task tests.tasking.flaky finished in") for m in messages)
    assert all(getattr(r, "task_name", None) == "tests.tasking.flaky" for r in caplog.records if r.name == "gateway.tasks")


def test_gives_up_after_max_retries():
    result = flaky.apply(kwargs={"fail": 100})
    assert result.failed()
    assert isinstance(result.result, Flaky)
    assert len(calls) == 1 + 3


def test_excluded_exception_is_not_retried():
    result = flaky.apply(kwargs={"fail": 5, "error": "FlakyButFatal"})
    assert result.failed() and isinstance(result.result, FlakyButFatal)
    assert len(calls) == 1


def test_other_exception_is_not_retried(caplog):
    caplog.set_level(logging.INFO, logger="gateway.tasks")
    result = flaky.apply(kwargs={"fail": 5, "error": "ValueError"})
    assert result.failed() and isinstance(result.result, ValueError)
    assert len(calls) == 1
    failed = [r for r in caplog.records if r.name == "gateway.tasks" and r.levelno == logging.ERROR]
    assert failed and "tests.tasking.flaky failed after" in failed[0].getMessage()
    assert failed[0].duration_ms >= 0


def test_logs_start_and_end_with_duration(caplog):
    caplog.set_level(logging.INFO, logger="gateway.tasks")
    audited.apply(kwargs={"n": 1})
    records = [r for r in caplog.records if r.name == "gateway.tasks"]
    assert [r.getMessage().split(" (")[0].split(" in ")[0] for r in records] == [
        "task tests.tasking.audit started",
        "task tests.tasking.audit finished",
    ]
    assert records[1].duration_ms >= 0 and records[1].task_name == "tests.tasking.audit"


def test_bad_arguments_are_refused_at_send_time():
    with pytest.raises(TypeError):
        audited.delay(m=1)  # checked against the function's signature before anything is sent
    with pytest.raises(TypeError):
        audited.delay(1)  # keyword-only


def test_backoff_is_exponential_and_capped():
    for retries in range(12):
        delay = backoff_seconds(retries, base=2, cap=600)
        full = min(600, 2 * 2**retries)
        assert 0.75 * full <= delay <= full
    assert backoff_seconds(50) <= 600


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"name": ""}, ValueError),
        ({"name": " padded "}, ValueError),
        ({"name": "x", "queue": ""}, ValueError),
        ({"name": "x", "max_retries": -1}, ValueError),
        ({"name": "x", "retry_on": (ValueError, "nope")}, TypeError),
        ({"name": "x", "exclude": (int,)}, TypeError),
    ],
)
def test_bad_decorator_arguments_fail_loudly(kwargs, error):
    with pytest.raises(error):
        task(**kwargs)


def test_delay_publishes_to_the_declared_queue():
    """A real publish to the broker (Redis): the message lands on the task's queue, nowhere else."""
    queue = f"tests-tasking-{uuid.uuid4().hex[:8]}"

    @task(name=f"tests.tasking.{queue}", queue=queue)
    def routed(*, n: int) -> int:
        return n

    broker = redis.Redis.from_url(app.conf.broker_url)
    try:
        routed.delay(n=7)
        raw = broker.lrange(queue, 0, -1)
        assert len(raw) == 1
        message = json.loads(raw[0])
        assert message["headers"]["task"] == f"tests.tasking.{queue}"
        assert message["properties"]["delivery_info"]["routing_key"] == queue
    finally:
        broker.delete(queue)
        broker.close()
