"""Coupa's OAuth2 client-credentials token: fetched, cached, renewed before it expires, and a
refused client remembered; the token endpoint's OAuth errors kept as provider codes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import requests

from connector.errors import AuthenticationError, RejectedError, RemoteError
from connector.http import HttpClient
from connector.redact import GLOBAL_REDACTOR

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a URL path, not a password
_OAUTH_CONFIG_ERRORS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client", "invalid_scope"})


class CoupaAuth(requests.auth.AuthBase):
    """OAuth2 client-credentials bearer auth: caches the token and renews it before it expires.

    Coupa tokens live 24 h and Coupa advises renewing after 20 h, so a token is used for
    five sixths of its lifetime. A refused client credential is remembered: it will not become
    valid during this run, and asking again would only add failed logins on the buyer's side.
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        client_id: str,
        client_secret: str,
        scopes: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._client_id = client_id
        self._secret = client_secret
        self._scopes = scopes
        self._clock = clock
        self._token: str | None = None
        self._renew_at = 0.0
        self._refused: AuthenticationError | None = None
        self._lock = threading.Lock()
        self.issued = 0

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token()}"
        return request

    def invalidate(self) -> None:
        """Drop the cached token (the server said 401): the next request fetches a new one."""
        with self._lock:
            self._token = None

    def token(self) -> str:
        """The current access token, fetched or renewed when needed."""
        with self._lock:
            if self._refused is not None:
                raise self._refused
            if self._token is None or self._clock() >= self._renew_at:
                self._token, self._renew_at = self._fetch()
            return self._token

    def _fetch(self) -> tuple[str, float]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret,
            "scope": self._scopes,
        }
        try:
            response = self._client.request(
                "POST",
                TOKEN_PATH,
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                idempotent=True,
            )
        except AuthenticationError as exc:
            self._refused = exc
            raise
        except RejectedError as exc:
            if exc.provider_code not in _OAUTH_CONFIG_ERRORS:
                raise
            self._refused = AuthenticationError(
                f"{self._client.name}: the OAuth client was refused ({exc.provider_code})"
            )
            raise self._refused from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise RejectedError(f"{self._client.name}: the token endpoint answered without an access_token")
        GLOBAL_REDACTOR.add(token)
        lifetime = _seconds(answer.get("expires_in") if isinstance(answer, dict) else None)
        self.issued += 1
        return token, self._clock() + max(lifetime * 5 / 6, min(lifetime, 30.0))


def _seconds(value: Any) -> float:
    """`expires_in` in seconds; 24 h (Coupa's documented lifetime) when absent or unreadable."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value * 1.0
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value) * 1.0
    return 86400.0


def classify_token_answer(response: requests.Response) -> RemoteError | None:
    """A 400 from the token endpoint keeps its OAuth error code (RFC 6749 §5.2) as provider_code."""
    if response.status_code != 400:
        return None
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return None
    if not isinstance(error, str):
        return None
    return RejectedError(f"coupa: the token request was refused ({error})", status=400, provider_code=error)
