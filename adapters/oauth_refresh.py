"""OAuth 2.0 refresh-token authentication with rotated refresh tokens kept in a 0600 file.

Providers such as QuickBooks Online and Xero hand out a new refresh token on every refresh and
stop accepting the old one, so the newest token must reach the disk before it is relied on:
it is written to a temporary file (mode 0600) beside the token file, fsynced, and renamed over
it. Refreshes are serialized per process by a lock and across processes by an advisory lock
on `<token file>.lock`, and a process that waited re-reads the file first: another process may
already have refreshed, and using the token it replaced would be refused (`invalid_grant`).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests

from adapters import durable
from connector.errors import (
    AuthenticationError,
    ConfigError,
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.http import HttpClient, RetryPolicy
from connector.redact import GLOBAL_REDACTOR, Redactor

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: the in-process lock still applies
    fcntl = None  # type: ignore[assignment]

_EXPIRY_MARGIN = 60.0  # refresh a little early so a token never expires mid-request


@dataclass(frozen=True)
class TokenState:
    """What the token file holds: the current refresh token and, when known, an access token."""

    refresh_token: str
    access_token: str = ""
    access_expires_at: int = 0  # seconds since the epoch

    def access_valid(self, now: float) -> bool:
        return bool(self.access_token) and now < self.access_expires_at - _EXPIRY_MARGIN


class TokenFile:
    """The token file: read as JSON, replaced atomically, never readable by other users."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> TokenState | None:
        """The stored state, or None when there is no file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"token file {str(self.path)!r} cannot be read: {exc.strerror}") from None
        try:
            data = json.loads(text)
            state = TokenState(
                refresh_token=str(data["refresh_token"]),
                access_token=str(data.get("access_token", "")),
                access_expires_at=int(data.get("access_expires_at", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            raise ConfigError(
                f"token file {str(self.path)!r} is not a JSON object with a 'refresh_token'"
            ) from None
        if not state.refresh_token:
            raise ConfigError(f"token file {str(self.path)!r} holds an empty refresh_token")
        return state

    def write(self, state: TokenState) -> None:
        """Replace the file atomically with a 0600 file holding `state`."""
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        payload = json.dumps(
            {
                "refresh_token": state.refresh_token,
                "access_token": state.access_token,
                "access_expires_at": state.access_expires_at,
                "updated_at": datetime.now(UTC).isoformat(),
            }
        ).encode("utf-8")
        durable.replace(self.path, payload, mode=0o600)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold an exclusive advisory lock shared by every process using this token file."""
        if fcntl is None:  # pragma: no cover
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


def _classify_token_response(response: requests.Response) -> RemoteError | None:
    """OAuth error bodies (RFC 6749 section 5.2) from the token endpoint."""
    if response.status_code < 400 or response.status_code >= 500 or response.status_code == 429:
        return None
    try:
        error = str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        error = ""
    if error in {"invalid_grant", "invalid_client", "unauthorized_client"} or response.status_code in (
        401,
        403,
    ):
        what = error or f"HTTP {response.status_code}"
        raise AuthenticationError(
            f"token endpoint refused the refresh ({what}): the app must be authorized again "
            "or its client credentials fixed"
        )
    return None


class RefreshTokenAuth(requests.auth.AuthBase):
    """A requests auth sending `Authorization: Bearer <access token>`, refreshed as needed.

    `invalidate()` (called by `HttpClient` after a 401) drops the access token so the next
    request refreshes. Every token seen is registered with the redactor.
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str,
        token_file: Path,
        initial_refresh_token: str | None = None,
        scopes: Sequence[str] = (),
        name: str = "oauth",
        timeout: tuple[float, float] = (5.0, 30.0),
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.time,
        redactor: Redactor = GLOBAL_REDACTOR,
    ) -> None:
        self.client_id = client_id
        self.token_url = token_url
        self.scopes = tuple(scopes)
        self.token_file = TokenFile(token_file)
        self.name = name
        self._client_secret = client_secret
        self._initial = initial_refresh_token
        self._clock = clock
        self._redactor = redactor
        self._lock = threading.Lock()
        self._state: TokenState | None = None
        self._rejected: set[str] = set()
        self.refreshes = 0
        redactor.add(client_secret)
        redactor.add(initial_refresh_token)
        self._client = HttpClient(
            token_url,
            name=f"{name} token endpoint",
            timeout=timeout,
            retry=retry or RetryPolicy(max_attempts=3),
            classify=_classify_token_response,
            redactor=redactor,
            session=session or requests.Session(),
        )
        if initial_refresh_token is None and not token_file.exists():
            raise ConfigError(
                f"{name}: no refresh token: token file {str(token_file)!r} does not exist and no "
                "initial refresh token is configured"
            )

    def check_ready(self) -> None:
        """Raise ConfigError now if the token file cannot be read, or its folder not written.

        Called before outbox rows are claimed, so a broken token file stops the run before it
        holds any row, instead of at the first request with rows locked until their lease ends.
        """
        self.token_file.read()
        folder = self.token_file.path.parent
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise ConfigError(
                f"{self.name}: the folder of token file {str(self.token_file.path)!r} is not writable: "
                "the rotated refresh token could not be saved"
            )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        return request

    def invalidate(self) -> None:
        """Forget the access token; the next request refreshes it."""
        with self._lock:
            if self._state is not None:
                if self._state.access_token:
                    self._rejected.add(self._state.access_token)
                self._state = TokenState(refresh_token=self._state.refresh_token)

    def access_token(self) -> str:
        """A current access token, refreshing (and persisting the rotated refresh token) if needed."""
        with self._lock:
            state = self._state
            if state is not None and self._usable(state):
                return state.access_token
            with self.token_file.locked():
                stored = self.token_file.read()
                if stored is not None:
                    self._remember(stored)
                    if self._usable(stored):
                        # Another process refreshed while this one waited for the lock.
                        self._state = stored
                        return stored.access_token
                refresh_token = stored.refresh_token if stored is not None else self._initial
                if not refresh_token:
                    raise ConfigError(f"{self.name}: no refresh token available")
                state = self._refresh(refresh_token)
                self._state = state
                try:
                    self.token_file.write(state)
                except OSError as exc:
                    # The old refresh token is spent: without the file the next run cannot refresh.
                    raise ConfigError(
                        f"{self.name}: the rotated refresh token cannot be saved to "
                        f"{str(self.token_file.path)!r}: {exc.strerror}"
                    ) from None
                return state.access_token

    def _usable(self, state: TokenState) -> bool:
        return state.access_valid(self._clock()) and state.access_token not in self._rejected

    def _remember(self, state: TokenState) -> None:
        self._redactor.add(state.refresh_token)
        self._redactor.add(state.access_token)

    def _refresh(self, refresh_token: str) -> TokenState:
        form: dict[str, str] = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if self.scopes:
            form["scope"] = " ".join(self.scopes)
        basic = base64.b64encode(f"{self.client_id}:{self._client_secret}".encode()).decode("ascii")
        try:
            response = self._client.request(
                "POST",
                self.token_url,
                data=urlencode(form),
                headers={
                    "Authorization": f"Basic {basic}",
                    "Content-Type": "application/x-www-form-urlencoded",
                    "Accept": "application/json",
                },
            )
        except RejectedError as exc:
            # A permanent refusal at the token endpoint (bad scope, bad request) will refuse every
            # invoice alike: a person must fix the credentials, so the sink stops (exit 2).
            raise AuthenticationError(f"{self.name}: token refresh refused: {exc.message}") from None
        except UncertainError as exc:
            # Whatever happened at the token endpoint, the request it guards was not sent.
            raise RetryableError(
                f"{self.name}: token refresh failed: {exc.message}",
                status=exc.status,
                correlation_id=exc.correlation_id,
            ) from None
        self.refreshes += 1
        return self._parse(response, refresh_token)

    def _parse(self, response: requests.Response, old_refresh_token: str) -> TokenState:
        try:
            body: Any = response.json()
            access = str(body["access_token"])
            expires_in = int(body.get("expires_in", 3600))
            rotated = str(body.get("refresh_token") or old_refresh_token)
        except (ValueError, KeyError, TypeError, AttributeError):
            raise RetryableError(
                f"{self.name}: token endpoint answered {response.status_code} without an access token"
            ) from None
        state = TokenState(
            refresh_token=rotated,
            access_token=access,
            access_expires_at=int(self._clock()) + expires_in,
        )
        self._remember(state)
        return state
