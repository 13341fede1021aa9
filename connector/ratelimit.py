"""Client-side budgets: a token bucket for request rate and a semaphore for concurrency."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class TokenBucket:
    """Allows `rate` requests per second on average with bursts of up to `burst` requests."""

    def __init__(
        self,
        rate: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError(f"rate must be > 0 and burst >= 1, got rate={rate} burst={burst}")
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)  # float-ok: a token count, not money
        self._clock = clock
        self._sleep = sleep
        self._last = clock()
        self._lock = threading.Lock()

    @classmethod
    def per_minute(cls, count: int, burst: int | None = None) -> TokenBucket:
        """A bucket for a provider limit stated per minute (e.g. 60/min)."""
        return cls(count / 60, burst or max(1, count // 10))

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    def acquire(self) -> float:
        """Take one token, sleeping until one is free; returns the seconds waited."""
        waited = 0.0
        while True:
            with self._lock:
                self._refill()
                if self._tokens >= 1:
                    self._tokens -= 1
                    return waited
                pause = (1 - self._tokens) / self.rate
            self._sleep(pause)
            waited += pause


class ConcurrencyLimit:
    """At most `limit` calls in flight at once (a provider's concurrent-request budget)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"concurrency limit must be >= 1, got {limit}")
        self.limit = limit
        self._semaphore = threading.BoundedSemaphore(limit)

    @contextmanager
    def slot(self) -> Iterator[None]:
        with self._semaphore:
            yield


_ACCOUNTS: dict[tuple[str, ...], tuple[ConcurrencyLimit, TokenBucket | None]] = {}
_ACCOUNTS_LOCK = threading.Lock()


def account_budget(
    account: tuple[str, ...], *, concurrency: int, per_minute: int | None = None
) -> tuple[ConcurrencyLimit, TokenBucket | None]:
    """The budget shared by every adapter instance talking to one provider account.

    A provider's limits hold per account (a QuickBooks realm, a Xero tenant, a NetSuite
    account), not per connection: two sinks configured on the same account share one budget.
    """
    key = (*account, str(concurrency), str(per_minute))
    with _ACCOUNTS_LOCK:
        if key not in _ACCOUNTS:
            rate = TokenBucket.per_minute(per_minute) if per_minute else None
            _ACCOUNTS[key] = (ConcurrencyLimit(concurrency), rate)
        return _ACCOUNTS[key]
