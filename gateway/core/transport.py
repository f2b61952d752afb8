"""Request-body read limits shared by the web worker and the views (docs/decisions/0010).

The worker (gateway.core.http_worker) enforces them on the socket; views see the errors
below, which are Django `BadRequest`s, so an endpoint that does not map them answers 400
rather than 500. The registry maps them to OCI errors (registry/v2/http.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from django.core.exceptions import BadRequest


class BodyError(BadRequest):
    """The request body could not be read to its end; the connection is closed after the answer."""


class BodyInvalid(BodyError):
    """The body's framing is broken (a malformed chunk) or the client ended it early."""


class BodyTimeout(BodyError):
    """The client sent the body too slowly: idle past the timeout, or below the minimum rate."""


@dataclass(frozen=True)
class BodyLimits:
    """How slowly a client may send a request body."""

    idle_seconds: float  # longest wait for the next bytes
    min_rate: float  # bytes per second, on average over the whole body ...
    grace_seconds: float  # ... once this long has passed since the body started


class BodyClock:
    """Times one request body against `BodyLimits`; the socket reader asks it before and after each recv.

    Only time spent waiting for the client counts: while the application is not reading (a part
    upload to S3, back-pressure from the upload memory budget), the client is not being slow.
    """

    def __init__(self, limits: BodyLimits) -> None:
        self.limits = limits
        self.received = 0
        self.waited = 0.0
        self.drain_deadline: float | None = None  # set while the worker drains an unread body

    def restart(self) -> None:
        """A new request body starts now."""
        self.received = 0
        self.waited = 0.0
        self.drain_deadline = None

    def next_timeout(self) -> float:
        """Seconds the next recv may wait: the idle timeout, or less when the rate allowance is nearer."""
        # The rate is broken once waited > max(grace, received / min_rate) with nothing more arriving.
        allowance = max(self.limits.grace_seconds, self.received / self.limits.min_rate) - self.waited
        remaining = min(self.limits.idle_seconds, allowance)
        if self.drain_deadline is not None:
            remaining = min(remaining, self.drain_deadline - time.monotonic())
        if remaining <= 0:
            raise self.timeout_error()
        return remaining

    def count(self, n: int, seconds: float) -> None:
        """`n` bytes arrived after waiting `seconds`; BodyTimeout when below the minimum rate after the grace period."""
        self.received += n
        self.waited += seconds
        if self.waited > self.limits.grace_seconds and self.received < self.limits.min_rate * self.waited:
            raise self.timeout_error()

    def timeout_error(self) -> BodyTimeout:
        return BodyTimeout(
            f"request body too slow: {self.received} bytes in {self.waited:.0f} s of waiting (at least "
            f"{self.limits.min_rate:.0f} bytes/s after {self.limits.grace_seconds:.0f} s, and no pause over "
            f"{self.limits.idle_seconds:.0f} s)"
        )
