"""A per-run request pacer: keeps one job's S3 request rate under a ceiling (Storj: 100 req/s per project, docs/storj.md §9)."""

from __future__ import annotations

import threading
import time


class RequestPacer:
    """Token bucket: `acquire()` blocks until one more request fits in `rate` per second (burst of one second)."""

    def __init__(self, rate: float) -> None:
        if not rate > 0:
            raise ValueError(f"request rate must be positive, got {rate!r}")
        self.rate = float(rate)
        self._tokens = 1.0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self.waited = 0.0
        self.requests = 0

    def acquire(self, n: int = 1) -> None:
        """Account for `n` requests, sleeping first if the budget is spent."""
        with self._lock:
            now = time.monotonic()
            self._tokens = min(max(self.rate, 1.0), self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            self.requests += n
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self.waited += wait
            time.sleep(wait)
