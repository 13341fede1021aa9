"""The one HTTP client policy every adapter uses: timeouts, retries, rate limits, redaction.

Adapters never build their own `requests.Session` retry loop. They create an `HttpClient`
with their budgets and call `request(...)`; an optional `classify` hook maps a provider's own
error shape (e.g. a QuickBooks `Fault`) onto the error tree before the generic rules apply.

Generic rules (see `connector.errors`):
- connect errors and connect timeouts: nothing was sent -> `RetryableError`;
- read timeouts, resets after sending, 5xx: retryable for idempotent methods, `UncertainError`
  for writes (the request may have been applied);
- 429: `RetryableError` honouring `Retry-After` (seconds or an HTTP date); a pause longer than
  `max_wait` parks the work (`park=True`) instead of holding the worker;
- 401/403: `AuthenticationError` after one credential refresh; other 4xx: `RejectedError`.

Every request sent and every 429 received is also counted against the adapter a run is working
for, when the run opened `CallCounts.counting(name)` around that work (the run's metrics).
"""

from __future__ import annotations

import email.utils
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from connector.call_counts import CallCounts as CallCounts
from connector.call_counts import count_call
from connector.errors import (
    AuthenticationError,
    ConnectorError,
    RejectedError,
    RetryableError,
    UncertainError,
)
from connector.ratelimit import ConcurrencyLimit, TokenBucket
from connector.redact import GLOBAL_REDACTOR, Redactor

log = logging.getLogger("po_connector.http")

_HANDSHAKE_FAILURES = ("CERTIFICATE_VERIFY_FAILED", "handshake", "WRONG_VERSION_NUMBER", "UNKNOWN_PROTOCOL")
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
Classifier = Callable[[requests.Response], ConnectorError | None]


@runtime_checkable
class RefreshableAuth(Protocol):
    """A requests auth that can drop its cached credential so the next call fetches a new one."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest: ...

    def invalidate(self) -> None: ...


@dataclass
class RetryPolicy:
    """How many attempts, and how long to wait between them."""

    max_attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_wait: float = 120.0  # a Retry-After longer than this parks the work for a later run
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def wait_strategy(self) -> wait_random_exponential:
        """Capped exponential backoff with full jitter: tenacity's own strategy."""
        return wait_random_exponential(multiplier=self.base_delay, max=self.max_delay)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return int(value) * 1.0
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta)


def _retry_in_process(error: BaseException) -> bool:
    """Retry now only what is retryable and not parked for a later run."""
    return isinstance(error, RetryableError) and not error.park


def _correlation_id(response: requests.Response) -> str:
    for header in ("intuit_tid", "Xero-Correlation-Id", "X-Request-Id", "Request-Id", "X-Correlation-Id"):
        value = response.headers.get(header)
        if value:
            return value
    return ""


def _short_body(response: requests.Response, redact: Redactor) -> str:
    try:
        text = response.text
    except (UnicodeDecodeError, requests.RequestException):
        return ""
    return redact(text[:500])


class HttpClient:
    """A `requests.Session` wrapped in the shared policy; one per adapter instance."""

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        timeout: tuple[float, float] = (5.0, 30.0),
        rate: TokenBucket | None = None,
        concurrency: ConcurrencyLimit | None = None,
        retry: RetryPolicy | None = None,
        auth: requests.auth.AuthBase | None = None,
        headers: Mapping[str, str] | None = None,
        classify: Classifier | None = None,
        redactor: Redactor = GLOBAL_REDACTOR,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = name
        self.timeout = timeout
        self.rate = rate
        self.concurrency = concurrency
        self.retry = retry or RetryPolicy()
        self.classify = classify
        self.redact = redactor
        self.session = session or requests.Session()
        self.session.auth = auth
        self.session.headers.update({"User-Agent": "po-connector/0.1"})
        if headers:
            self.session.headers.update(headers)
        self.calls = 0

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        classify: Classifier | None = None,
    ) -> requests.Response:
        """Send with retries; return a 2xx/3xx response or raise a `RemoteError` subclass."""
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        refreshed = False

        def attempt() -> requests.Response:
            nonlocal refreshed
            try:
                return self._send_once(method, path, params, json, data, headers, safe, classify)
            except AuthenticationError:
                auth = self.session.auth
                if refreshed or not isinstance(auth, RefreshableAuth):
                    raise
                refreshed = True
                auth.invalidate()
                return self._send_once(method, path, params, json, data, headers, safe, classify)

        retrying = Retrying(
            retry=retry_if_exception(_retry_in_process),
            stop=stop_after_attempt(self.retry.max_attempts),
            wait=self._wait,
            sleep=self.retry.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        result: requests.Response = retrying(attempt)
        return result

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RetryableError) and error.retry_after is not None:
            return error.retry_after
        return self.retry.wait_strategy()(state)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "retrying %s call after %s (attempt %d)",
            self.name,
            self.redact(str(error)),
            state.attempt_number,
            extra={"adapter": self.name},
        )

    def _send_once(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: bytes | str | None,
        headers: Mapping[str, str] | None,
        idempotent: bool,
        classify: Classifier | None,
    ) -> requests.Response:
        url = self.url(path)
        shown = self.redact.url(url)
        if self.rate is not None:
            self.rate.acquire()
        started = time.monotonic()
        try:
            if self.concurrency is not None:
                with self.concurrency.slot():
                    response = self._raw(method, url, params, json, data, headers)
            else:
                response = self._raw(method, url, params, json, data, headers)
        except requests.ConnectTimeout:
            raise RetryableError(f"{self.name}: cannot connect to {shown}: connect timeout") from None
        except requests.exceptions.SSLError as exc:
            # A failed handshake or certificate check sent nothing; a TLS error after that may
            # have carried the whole request.
            if any(word in str(exc) for word in _HANDSHAKE_FAILURES):
                raise RetryableError(f"{self.name}: TLS handshake with {shown} failed") from None
            return self._after_send_failure(method, shown, idempotent, "TLS error")
        except requests.ConnectionError as exc:
            text = str(exc)
            if "NewConnectionError" in text or "Failed to establish" in text or "Name or service" in text:
                raise RetryableError(f"{self.name}: cannot connect to {shown}") from None
            return self._after_send_failure(method, shown, idempotent, "connection reset")
        except (requests.ReadTimeout, requests.exceptions.ChunkedEncodingError) as exc:
            return self._after_send_failure(method, shown, idempotent, type(exc).__name__)
        elapsed = time.monotonic() - started
        if response.status_code == 429:
            count_call("throttled")
        log.debug(
            "%s %s -> %s in %.3fs",
            method,
            shown,
            response.status_code,
            elapsed,
            extra={"adapter": self.name},
        )
        return self._check(response, method, shown, idempotent, classify or self.classify)

    def _raw(
        self,
        method: str,
        url: str,
        params: Mapping[str, Any] | None,
        json: Any,
        data: bytes | str | None,
        headers: Mapping[str, str] | None,
    ) -> requests.Response:
        self.calls += 1
        count_call("calls")
        return self.session.request(
            method,
            url,
            params=params,
            json=json,
            data=data,
            headers=dict(headers or {}),
            timeout=self.timeout,
        )

    def _after_send_failure(self, method: str, shown: str, idempotent: bool, what: str) -> requests.Response:
        message = f"{self.name}: {what} during {method} {shown}"
        if idempotent:
            raise RetryableError(message)
        raise UncertainError(message)

    def _check(
        self,
        response: requests.Response,
        method: str,
        shown: str,
        idempotent: bool,
        classify: Classifier | None,
    ) -> requests.Response:
        if classify is not None:
            classified = classify(response)
            if classified is not None:
                raise classified
        status = response.status_code
        if status < 400:
            return response
        correlation = _correlation_id(response)
        body = _short_body(response, self.redact)
        message = f"{self.name}: {method} {shown} answered {status}: {body}".strip()
        if status == 429:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            park = wait is not None and wait > self.retry.max_wait
            raise RetryableError(
                message, retry_after=wait, park=park, status=status, correlation_id=correlation
            )
        if status in (401, 403):
            raise AuthenticationError(f"{self.name}: credentials refused ({status}) by {shown}")
        if status >= 500:
            if idempotent:
                raise RetryableError(message, status=status, correlation_id=correlation)
            raise UncertainError(message, status=status, correlation_id=correlation)
        raise RejectedError(message, status=status, correlation_id=correlation)
