"""A small JSON-RPC client for a Tryton server (trytond), over the shared HTTP policy.

Protocol (trytond 8.x): every call is `POST <url>/<database>/rpc/` with the body
`{"id": n, "method": ..., "params": [...]}`. `common.db.login [user, {"password": ...}]`
answers `[user_id, session, bus_url]`; later calls carry the header
`Authorization: Session base64("user:user_id:session")`. Model methods are called as
`model.<model>.<method>` with the user context (from `model.res.user.get_preferences`) as the
last positional parameter. Decimals, dates, datetimes, times, timedeltas and bytes travel as
`{"__class__": ..., ...}` objects; they are decoded here into `Decimal`, `date`, timezone-aware
UTC `datetime` (Tryton keeps timestamps in UTC), `time`, `timedelta` and `bytes`. JSON numbers
with a fraction are read as `Decimal`, never as float.

Errors map onto the error tree: a refused login (HTTP 401) is an `AuthenticationError`; an
expired or no longer fresh session (401 on a model call) gets one new login; a Tryton
`UserError` is a `RejectedError` carrying Tryton's own message, a `UserWarning` a
`TrytonWarning` (a `RejectedError` with the warning's key); a `ConcurrencyException` is
retryable. Tryton runs each call in one database transaction that is rolled back on any
error, so an error answer means nothing was written. Reads are sent as idempotent; writes are
not, so a timeout on a write is an `UncertainError`.
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from pydantic import Field

from connector.errors import (
    AuthenticationError,
    ConfigError,
    ConnectorError,
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.http import HttpClient, RetryPolicy
from connector.ports import AdapterConfig
from connector.redact import GLOBAL_REDACTOR
from connector.secrets import resolve_secret

PAGE_SIZE = 500


class TrytonServerConfig(AdapterConfig):
    """Where a Tryton server is and who logs in; the password comes from env or a file."""

    url: str = Field(min_length=1, description="server root, e.g. http://127.0.0.1:8000")
    database: str = Field(min_length=1)
    user: str = Field(default="admin", min_length=1)
    password_env: str | None = None
    password_file: Path | None = None
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)


class TrytonWarning(RejectedError):
    """Tryton asked for a confirmation (a `UserWarning`); `key` names it for `res.user.warning`."""

    def __init__(self, message: str, *, key: str) -> None:
        super().__init__(message, provider_code="UserWarning")
        self.key = key


def encode(value: Any) -> Any:
    """A value in Tryton's JSON form (Decimal, dates and times as `__class__` objects)."""
    if isinstance(value, Decimal):
        return {"__class__": "Decimal", "decimal": str(value)}
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return {
            "__class__": "datetime",
            "year": value.year,
            "month": value.month,
            "day": value.day,
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, date):
        return {"__class__": "date", "year": value.year, "month": value.month, "day": value.day}
    if isinstance(value, time):
        return {
            "__class__": "time",
            "hour": value.hour,
            "minute": value.minute,
            "second": value.second,
            "microsecond": value.microsecond,
        }
    if isinstance(value, timedelta):
        return {
            "__class__": "timedelta",
            "seconds": Decimal(value.days * 86400 + value.seconds) + Decimal(value.microseconds) / 1_000_000,
        }
    if isinstance(value, bytes):
        return {"__class__": "bytes", "base64": base64.b64encode(value).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(key): encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [encode(item) for item in value]
    return value


def _decode_object(obj: dict[str, Any]) -> Any:
    kind = obj.get("__class__")
    if kind is None:
        return obj
    if kind == "Decimal":
        return Decimal(str(obj["decimal"]))
    if kind == "date":
        return date(int(obj["year"]), int(obj["month"]), int(obj["day"]))
    if kind == "datetime":
        return datetime(
            int(obj["year"]),
            int(obj["month"]),
            int(obj["day"]),
            int(obj.get("hour", 0)),
            int(obj.get("minute", 0)),
            int(obj.get("second", 0)),
            int(obj.get("microsecond", 0)),
            tzinfo=UTC,
        )
    if kind == "time":
        return time(
            int(obj.get("hour", 0)),
            int(obj.get("minute", 0)),
            int(obj.get("second", 0)),
            int(obj.get("microsecond", 0)),
        )
    if kind == "timedelta":
        micro = (Decimal(str(obj["seconds"])) * 1_000_000).to_integral_value()
        return timedelta(microseconds=int(micro))
    if kind == "bytes":
        return base64.b64decode(obj["base64"])
    return obj


def decode(text: str) -> Any:
    """Parse a Tryton JSON answer; numbers with a fraction become `Decimal`."""
    return json.loads(text, parse_float=Decimal, object_hook=_decode_object)


def _tryton_error(error: Any, where: str) -> ConnectorError:
    """Map the `error` member of a JSON-RPC answer onto the error tree."""
    if isinstance(error, list | tuple) and error:
        kind = error[0]
        args = error[1] if len(error) > 1 else None
        if kind == "UserError":
            parts = [str(p) for p in (args if isinstance(args, list | tuple) else [args])[:2] if p]
            return RejectedError(f"{where}: Tryton refused: {' '.join(parts)}", provider_code="UserError")
        if kind == "UserWarning" and isinstance(args, list | tuple) and len(args) >= 2:
            detail = " ".join(str(p) for p in args[1:3] if p)
            return TrytonWarning(f"{where}: Tryton asks to confirm: {detail}", key=str(args[0]))
        if kind == "ConcurrencyException":
            return RetryableError(f"{where}: Tryton concurrency conflict: {args}", provider_code=kind)
        if kind == "RateLimitException":
            return RetryableError(f"{where}: Tryton rate limit", provider_code=kind)
        if kind == "LoginException":
            # A login that needs more (e.g. a one-time code) is for a person to fix, not per row.
            return AuthenticationError(f"{where}: Tryton asks for more login parameters: {args}")
        first = str(kind).strip().splitlines()[0] if str(kind).strip() else "unknown error"
        # Any other exception rolled Tryton's transaction back (a serialization failure, the
        # database going away): nothing was written, so the call may be made again.
        return RetryableError(f"{where}: Tryton server error: {first}", provider_code="server-error")
    return RejectedError(f"{where}: Tryton answered an error: {error!r}", provider_code="server-error")


class _SessionAuth(requests.auth.AuthBase):
    """The `Authorization: Session ...` header; logs in on first use and after `invalidate()`."""

    def __init__(self, login: Callable[[], str]) -> None:
        self._login = login
        self._header: str | None = None
        self._lock = threading.Lock()

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        with self._lock:
            if self._header is None:
                self._header = self._login()
            header = self._header
        request.headers["Authorization"] = header
        return request

    def invalidate(self) -> None:
        with self._lock:
            self._header = None


class TrytonRpc:
    """One logged-in connection to one Tryton database (login on first call)."""

    def __init__(
        self,
        *,
        url: str,
        database: str,
        user: str,
        password: str,
        name: str,
        timeout: tuple[float, float] = (5.0, 60.0),
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = name
        self.database = database
        self.user = user
        self._password = password
        self._path = f"/{database}/rpc/"
        self._ids = itertools.count(1)
        self._context: dict[str, Any] | None = None
        self.user_id: int | None = None
        self.logins = 0
        policy = retry or RetryPolicy()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        self._login_client = HttpClient(url, name=name, timeout=timeout, retry=policy, headers=headers)
        self.client = HttpClient(
            url, name=name, timeout=timeout, retry=policy, headers=headers, auth=_SessionAuth(self._login)
        )

    @classmethod
    def from_config(
        cls, config: TrytonServerConfig, *, retry: RetryPolicy | None = None, base_dir: Path | None = None
    ) -> TrytonRpc:
        """A client for the server a config names, with the password resolved from env or file."""
        password = resolve_secret(
            env=config.password_env, file=config.password_file, key="password", base_dir=base_dir
        )
        return cls(
            url=config.url,
            database=config.database,
            user=config.user,
            password=password,
            name=f"tryton:{config.name}",
            timeout=(config.connect_timeout, config.read_timeout),
            retry=retry,
        )

    @property
    def calls(self) -> int:
        """HTTP calls made so far, logins included."""
        return self.client.calls + self._login_client.calls

    def _body(self, method: str, params: Sequence[Any]) -> dict[str, Any]:
        return {"id": next(self._ids), "method": method, "params": encode(list(params))}

    def _classifier(self, method: str, write: bool) -> Callable[[requests.Response], ConnectorError | None]:
        where = f"{self.name}: {method}"

        def classify(response: requests.Response) -> ConnectorError | None:
            if response.status_code != 200:
                return None
            try:
                payload = decode(response.text)
            except ValueError:
                payload = None
            if not isinstance(payload, dict) or ("result" not in payload and "error" not in payload):
                message = f"{where}: the answer is not a JSON-RPC response"
                return UncertainError(message) if write else RetryableError(message)
            if payload.get("error") is not None:
                return _tryton_error(payload["error"], where)
            return None

        return classify

    def _login(self) -> str:
        method = "common.db.login"
        try:
            response = self._login_client.request(
                "POST",
                self._path,
                json=self._body(method, [self.user, {"password": self._password}]),
                idempotent=True,
                classify=self._classifier(method, write=False),
            )
        except AuthenticationError:
            raise AuthenticationError(
                f"{self.name}: Tryton refused the login of user {self.user!r} to database {self.database!r}"
            ) from None
        except RejectedError as exc:
            if exc.status == 404:
                raise ConfigError(f"{self.name}: Tryton has no database {self.database!r}") from None
            raise
        result = decode(response.text)["result"]
        if not isinstance(result, list) or len(result) < 2:
            raise AuthenticationError(f"{self.name}: Tryton refused the login of user {self.user!r}")
        user_id, session = result[0], result[1]
        self.user_id = int(user_id)
        GLOBAL_REDACTOR.add(str(session))
        self.logins += 1
        token = base64.b64encode(f"{self.user}:{user_id}:{session}".encode()).decode("ascii")
        return f"Session {token}"

    def call(self, method: str, *params: Any, write: bool = False) -> Any:
        """Call one RPC method and return its decoded result (raises a `RemoteError` subclass)."""
        response = self.client.request(
            "POST",
            self._path,
            json=self._body(method, params),
            idempotent=not write,
            classify=self._classifier(method, write),
        )
        return decode(response.text)["result"]

    @property
    def context(self) -> dict[str, Any]:
        """The user's preferences (company, language, ...), sent with every model call."""
        if self._context is None:
            preferences = self.call("model.res.user.get_preferences", True, {})
            self._context = dict(preferences) if isinstance(preferences, dict) else {}
        return self._context

    def model(self, model: str, method: str, *params: Any, write: bool = False) -> Any:
        """Call `model.<model>.<method>` with the user context appended."""
        return self.call(f"model.{model}.{method}", *params, self.context, write=write)

    def search_read(
        self,
        model: str,
        domain: Sequence[Any],
        fields: Sequence[str],
        *,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Every record matching `domain`, read in pages by ascending id (stable under inserts)."""
        rows: list[dict[str, Any]] = []
        last_id = 0
        wanted = list(dict.fromkeys(["id", *fields]))
        while True:
            size = PAGE_SIZE if limit is None else min(PAGE_SIZE, limit - len(rows))
            if size <= 0:
                return rows
            page = self.model(
                model,
                "search_read",
                [list(domain), ("id", ">", last_id)] if domain else [("id", ">", last_id)],
                0,
                size,
                [("id", "ASC")],
                wanted,
            )
            if not isinstance(page, list):
                raise RejectedError(f"{self.name}: {model}.search_read answered {type(page).__name__}")
            rows.extend(page)
            if len(page) < size:
                return rows
            last_id = int(page[-1]["id"])

    def logout(self) -> None:
        """End the session on the server (best effort)."""
        try:
            self.call("common.db.logout")
        except RemoteError:
            return
