"""What Stripe's answers mean: the pinned API version checked on every answer, and Stripe's
`{"error": {...}}` bodies and `Stripe-Should-Retry` mapped onto the error tree."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import requests

from connector.errors import AuthenticationError, ConfigError, RejectedError, RemoteError, RetryableError
from connector.http import parse_retry_after
from connector.redact import GLOBAL_REDACTOR


def _error_of(response: requests.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


class StripeClassifier:
    """Maps Stripe's answers onto the error tree: version check, `{"error": {...}}`, Should-Retry."""

    def __init__(self, name: str, api_version: str, max_wait: float) -> None:
        self.name = name
        self.api_version = api_version
        self.max_wait = max_wait

    def __call__(self, response: requests.Response) -> RemoteError | None:
        request_id = response.headers.get("Request-Id", "")
        status = response.status_code
        if status < 400:
            answered = response.headers.get("Stripe-Version")
            if answered and answered != self.api_version:
                raise ConfigError(
                    f"{self.name}: Stripe answered with API version {answered}, not the pinned "
                    f"{self.api_version} (request {request_id})"
                )
            return None
        error = _error_of(response)
        kind = str(error.get("type") or "")
        code = str(error.get("code") or kind)
        message = GLOBAL_REDACTOR(str(error.get("message") or response.reason or ""))
        text = f"{self.name}: Stripe {status} {code or 'error'}: {message} (request {request_id or '-'})"
        should_retry = response.headers.get("Stripe-Should-Retry", "").lower()
        if status in (401, 403):
            raise AuthenticationError(text)
        if "api version" in message.lower():
            raise ConfigError(text)
        if status == 429 or should_retry == "true":
            wait = parse_retry_after(response.headers.get("Retry-After"))
            park = should_retry == "false" or (wait is not None and wait > self.max_wait)
            return RetryableError(
                text,
                retry_after=wait,
                park=park,
                status=status,
                provider_code=code,
                correlation_id=request_id,
            )
        if status >= 500 and should_retry != "false":
            return None  # the generic rule: retryable for reads
        return RejectedError(text, status=status, provider_code=code, correlation_id=request_id)
