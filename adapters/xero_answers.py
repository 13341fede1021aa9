"""What the Xero Accounting API's answers mean: budgets left, rate limits, validation errors, and
the documents an answer holds.

A 429 is retryable after its `Retry-After` (a daily limit, or a wait longer than the retry policy
waits, parks the row); a 400 `ValidationException` refuses the request with its messages. A
write's 2xx answer that cannot be read leaves the outcome uncertain, a read's is retryable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import requests

from adapters.xero_payload import dumps_exact, loads_exact, request_key, validation_messages
from connector.errors import RejectedError, RemoteError, RetryableError, UncertainError
from connector.http import HttpClient, parse_retry_after

CORRELATION_HEADER = "Xero-Correlation-Id"


@dataclass(frozen=True)
class RateLimits:
    """What Xero says is left of its budgets after a call (None when the header was absent)."""

    minute_remaining: int | None = None
    day_remaining: int | None = None
    app_minute_remaining: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimits:
        def number(name: str) -> int | None:
            value = headers.get(name, "")
            return int(value) if value.strip().isdigit() else None

        return cls(
            minute_remaining=number("X-MinLimit-Remaining"),
            day_remaining=number("X-DayLimit-Remaining"),
            app_minute_remaining=number("X-AppMinLimit-Remaining"),
        )


def correlation_of(response: requests.Response) -> str:
    """The `Xero-Correlation-Id` of an answer, '' when absent."""
    return response.headers.get(CORRELATION_HEADER, "")


def classify_answer(response: requests.Response, *, name: str, max_wait: float) -> RemoteError | None:
    """Xero's own error shapes: 429 with X-Rate-Limit-Problem, 400 ValidationException; None
    leaves the answer to the generic rules of the HTTP policy."""
    status = response.status_code
    correlation = correlation_of(response)
    if status == 429:
        problem = response.headers.get("X-Rate-Limit-Problem", "").strip().lower()
        wait = parse_retry_after(response.headers.get("Retry-After"))
        daily = problem in ("day", "daily")
        park = daily or (wait is not None and wait > max_wait)
        return RetryableError(
            f"{name}: Xero {problem or 'rate'} limit reached, retry after {wait} s",
            retry_after=wait,
            park=park,
            status=status,
            provider_code=problem,
            correlation_id=correlation,
        )
    if status == 400:
        return _validation_error(response, correlation, name)
    return None


def _validation_error(response: requests.Response, correlation: str, name: str) -> RejectedError | None:
    try:
        document = loads_exact(response.content)
    except ValueError:
        return None
    if not isinstance(document, dict) or "Message" not in document:
        return None
    messages = [str(document["Message"])]
    for element in document.get("Elements") or []:
        if isinstance(element, dict):
            messages.extend(validation_messages(element))
    return RejectedError(
        f"{name}: Xero refused the request: {'; '.join(messages)}",
        status=400,
        provider_code=str(document.get("Type", "")),
        correlation_id=correlation,
    )


def elements_of(response: requests.Response, key: str, *, name: str, written: bool) -> list[dict[str, Any]]:
    """The `key` array of an answer (`Invoices`, `CreditNotes`, `Allocations`); a body we cannot
    read is uncertain after a write and retryable after a read."""
    try:
        document = loads_exact(response.content)
        elements = document[key]
        if not isinstance(elements, list) or not all(isinstance(e, dict) for e in elements):
            raise TypeError(f"{key} is not a list of objects")
    except (ValueError, KeyError, TypeError) as exc:
        message = f"{name}: unreadable Xero answer ({response.status_code}): {exc}"
        error = UncertainError if written else RetryableError
        raise error(message, status=response.status_code, correlation_id=correlation_of(response)) from None
    return elements


def put_batch(
    client: HttpClient, collection: str, chunk: Sequence[tuple[Any, dict[str, Any]]], *, name: str
) -> tuple[requests.Response, list[dict[str, Any]]]:
    """PUT one batch of documents (`Invoices`, `CreditNotes`) with per-item errors and 4 unit
    decimals, under the Idempotency-Key of its plans and body; the answer and its elements."""
    body = dumps_exact({collection: [payload for _, payload in chunk]})
    response = client.request(
        "PUT",
        collection,
        params={"summarizeErrors": "false", "unitdp": "4"},
        data=body,
        headers={
            "Content-Type": "application/json",
            "Idempotency-Key": request_key([plan.idempotency_key for plan, _ in chunk], body),
        },
        idempotent=False,
    )
    return response, elements_of(response, collection, name=name, written=True)
