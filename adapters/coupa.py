"""The `coupa` PO source: a buyer's Coupa instance read through the Core REST API.

The buyer grants an OAuth2 client-credentials client (scope `core.purchase_order.read`); POs are
read from `/api/purchase_orders` ordered by `updated-at`, 50 at a time.

Offset paging over a window that moves while it is read skips rows (a PO updated during the
pull jumps to the end and every later row shifts one place left). So after each full page the
query is re-anchored at the last `updated-at` seen (`updated-at[gt_or_eq]`, offset 0) and rows
already yielded are dropped; offset only advances inside a group of rows that share one second.
If the server turns out not to sort by `updated-at`, the pull falls back to plain offset paging
from the start and holds the cursor back until the last page.

The OAuth token is `adapters.coupa_auth`; the JSON mapping is `adapters.coupa_mapping`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

import requests
from pydantic import Field, field_validator, model_validator

from adapters.coupa_acknowledge import PO_PATH, mark_exported
from adapters.coupa_auth import CoupaAuth, classify_token_answer
from adapters.coupa_fields import CoupaMappingError, parse_timestamp, split_array
from adapters.coupa_mapping import fields_param, map_purchase_order
from connector.errors import ConfigError, InputError, InputProblem, RemoteError, RetryableError
from connector.http import HttpClient, RetryPolicy
from connector.model import PoAcknowledgement
from connector.ports import (
    AdapterConfig,
    AdapterContext,
    AdapterKind,
    Capability,
    PullContext,
    SourceBatch,
    SourceRecord,
)
from connector.ratelimit import TokenBucket
from connector.secrets import resolve_secret
from connector.values import http_url

MAX_PAGE = 50  # Coupa returns at most 50 objects per request


class CoupaConfig(AdapterConfig):
    """A buyer's Coupa instance and the OAuth client it granted us."""

    type: str = "coupa"
    base_url: str
    client_id: str = Field(min_length=1)
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    scopes: str = "core.purchase_order.read"
    page_size: int = Field(default=MAX_PAGE, ge=2, le=MAX_PAGE)
    overlap_seconds: int = Field(default=300, ge=0)
    rate_per_second: float = Field(default=25.0, gt=0)
    burst: int = Field(default=20, ge=1)
    timeout_connect: float = Field(default=5.0, gt=0)
    timeout_read: float = Field(default=60.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)
    buyer_id: str = ""
    fields: bool = True
    start_date: datetime | date | None = None

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, example="https://acme.coupahost.com")

    @model_validator(mode="after")
    def _one_secret(self) -> CoupaConfig:
        if not self.client_secret_env and not self.client_secret_file:
            raise ValueError("set client_secret_env or client_secret_file")
        return self

    @property
    def buyer(self) -> str:
        """The buyer id stamped on every PO: configured, else the instance's host name."""
        return self.buyer_id or (urlsplit(self.base_url).hostname or "")


def classify_listing(response: requests.Response) -> RemoteError | None:
    """A 2xx that is not a JSON array is a bad answer to a read: ask again."""
    if response.status_code >= 300:
        return None
    try:
        split_array(response.text)
    except ValueError as exc:
        return RetryableError(f"coupa: unreadable answer ({exc})", status=response.status_code)
    return None


def _floor_second(moment: datetime) -> datetime:
    return moment.replace(microsecond=0)


def _as_utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _filter_time(moment: datetime) -> str:
    return _floor_second(moment).strftime("%Y-%m-%dT%H:%M:%S+00:00")


class _Page:
    """What one listing answer held, row by row (raw text, parsed object, updated-at)."""

    def __init__(self, text: str) -> None:
        self.rows: list[tuple[str, Any, datetime | None]] = []
        for raw, value in split_array(text):
            self.rows.append((raw, value, _updated_at(value)))


def _updated_at(value: Any) -> datetime | None:
    if not isinstance(value, dict):
        return None
    try:
        return parse_timestamp(value.get("updated-at"), "updated-at")
    except CoupaMappingError:
        return None


def _ascending(page: _Page) -> bool:
    """False when the answer is out of updated-at order (the server ignored order_by)."""
    previous: datetime | None = None
    for _, _, updated in page.rows:
        if updated is None:
            continue
        if previous is not None and updated < previous:
            return False
        previous = updated
    return True


class CoupaSource:
    """Pulls POs changed since the cursor from a Coupa instance; fetches one PO by number."""

    kind: ClassVar[AdapterKind] = AdapterKind.SOURCE
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.INCREMENTAL, Capability.FETCH_ONE, Capability.ACKNOWLEDGE}
    )
    Config: ClassVar[type[AdapterConfig]] = CoupaConfig

    def __init__(
        self,
        config: AdapterConfig,
        context: AdapterContext,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(config, CoupaConfig):
            raise ConfigError(f"{config.name}: expected a coupa config, got type {config.type!r}")
        self.config = config
        self.name = config.name
        self.tenant = context.tenant
        self.log = context.logger
        secret_file = context.base_dir / config.client_secret_file if config.client_secret_file else None
        secret = resolve_secret(
            env=config.client_secret_env, file=secret_file, key=f"{config.name}.client_secret"
        )
        retry = retry or RetryPolicy(max_attempts=config.max_attempts)
        rate = TokenBucket(config.rate_per_second, config.burst)
        timeout = (config.timeout_connect, config.timeout_read)
        headers = {"Accept": "application/json"}
        token_client = HttpClient(
            config.base_url,
            name=f"{config.name} (token)",
            timeout=timeout,
            rate=rate,
            retry=retry,
            headers=headers,
            classify=classify_token_answer,
        )
        self.auth = CoupaAuth(
            token_client, client_id=config.client_id, client_secret=secret, scopes=config.scopes, clock=clock
        )
        self.http = HttpClient(
            config.base_url,
            name=config.name,
            timeout=timeout,
            rate=rate,
            retry=retry,
            auth=self.auth,
            headers=headers,
        )

    # -- public -------------------------------------------------------------------------
    def pull(self, context: PullContext) -> Iterator[SourceBatch]:
        """Yield one batch per page of POs updated since the cursor (minus the overlap window)."""
        started = _as_utc(context.started_at)
        previous = self._cursor_time(context.cursor)
        since = self._since(previous)
        if context.since is not None and (since is None or context.since > since):
            # A resync of what changed since a date asks the server for just that (updated-at
            # filter) instead of reading every PO and dropping the older ones.
            since = _as_utc(context.since)
        limit = self.config.page_size
        seen: dict[str, datetime | None] = {}
        anchor, offset = since, 0
        sorted_answers = True
        newest = previous
        verified = False
        while True:
            page = self._list(anchor, offset, limit)
            if sorted_answers and not _ascending(page):
                self.log.warning(
                    "%s: the server does not sort by updated-at; paging by offset from the start",
                    self.name,
                    extra={"adapter": self.name},
                )
                sorted_answers = False
                anchor, offset = since, 0
                continue
            if sorted_answers and not verified and len(page.rows) == limit:
                # Re-anchoring on updated-at is safe only when the server sorts across pages,
                # not just within one: one row asked by plain offset must come after this page.
                verified = True
                if not self._sorted_beyond(page, anchor, offset + limit):
                    self.log.warning(
                        "%s: the server does not sort by updated-at across pages; paging by offset",
                        self.name,
                        extra={"adapter": self.name},
                    )
                    sorted_answers = False
                    anchor, offset = since, 0
                    continue
            batch = SourceBatch(document=f"{self.config.base_url}{PO_PATH}")
            for raw, value, updated in page.rows:
                if updated is not None and (newest is None or updated > newest):
                    newest = updated
                key = str(value.get("id")) if isinstance(value, dict) else raw
                if key in seen and seen[key] == updated:
                    continue
                seen[key] = updated
                self._add(batch, raw, value)
            last_page = len(page.rows) < limit
            if sorted_answers or last_page:
                batch.cursor = self._cursor(previous, newest, started)
            else:
                batch.cursor = context.cursor
            yield batch
            if last_page:
                return
            if sorted_answers:
                anchor, offset = self._next_position(page, seen, anchor, offset, limit)
            else:
                offset += limit

    def _sorted_beyond(self, page: _Page, anchor: datetime | None, next_offset: int) -> bool:
        """False when the row after `page` (by plain offset) is older than the page's last row."""
        last = next((updated for _, _, updated in reversed(page.rows) if updated is not None), None)
        probe = self._list(anchor, next_offset, 1)
        first = next((updated for _, _, updated in probe.rows if updated is not None), None)
        return last is None or first is None or first >= last

    def fetch(self, po_number: str) -> list[SourceRecord]:
        """The PO with this number as Coupa holds it now (resync); empty when there is none."""
        params: dict[str, Any] = {"po-number": po_number}
        if self.config.fields:
            params["fields"] = fields_param()
        response = self.http.request("GET", PO_PATH, params=params, classify=classify_listing)
        records: list[SourceRecord] = []
        for raw, value, _ in _Page(response.text).rows:
            if isinstance(value, dict) and str(value.get("po-number", "")).strip() != po_number:
                continue
            record, problem = self._map(raw, value)
            if problem is not None:
                raise InputError(problem)
            if record is not None:
                records.append(record)
        return records

    def acknowledge(self, ack: PoAcknowledgement) -> str:
        """Tell Coupa the PO revision was accepted: see `adapters.coupa_acknowledge`."""
        return mark_exported(self.http, self.config.scopes, self.name, ack)

    # -- paging -------------------------------------------------------------------------
    def _list(self, anchor: datetime | None, offset: int, limit: int) -> _Page:
        params: dict[str, Any] = {"order_by": "updated-at", "dir": "asc", "limit": limit, "offset": offset}
        if anchor is not None:
            params["updated-at[gt_or_eq]"] = _filter_time(anchor)
        if self.config.fields:
            params["fields"] = fields_param()
        response = self.http.request("GET", PO_PATH, params=params, classify=classify_listing)
        page = _Page(response.text)
        self.log.debug(
            "%s: offset %d gave %d POs", self.name, offset, len(page.rows), extra={"adapter": self.name}
        )
        return page

    @staticmethod
    def _next_position(
        page: _Page, seen: Mapping[str, datetime | None], anchor: datetime | None, offset: int, limit: int
    ) -> tuple[datetime | None, int]:
        """Where the next query starts: re-anchored at the last updated-at, or further into a tie."""
        last = next((updated for _, _, updated in reversed(page.rows) if updated is not None), None)
        if last is None:
            return anchor, offset + limit
        new_anchor = _floor_second(last)
        if anchor is not None and new_anchor <= _floor_second(anchor):
            return anchor, offset + limit
        already = sum(1 for updated in seen.values() if updated is not None and updated >= new_anchor)
        # Rows already seen come back first and are dropped; only a tie group as long as a page
        # has to be stepped over by offset (keeping one row of overlap).
        return new_anchor, 0 if already < limit else already - 1

    # -- cursor -------------------------------------------------------------------------
    def _cursor_time(self, cursor: Mapping[str, Any] | None) -> datetime | None:
        if not cursor or cursor.get("updated_at") in (None, ""):
            return None
        value = cursor.get("updated_at")
        try:
            return parse_timestamp(value, "updated_at")
        except CoupaMappingError:
            raise ConfigError(f"{self.name}: stored cursor updated_at={value!r} is not a timestamp") from None

    def _since(self, previous: datetime | None) -> datetime | None:
        if previous is not None:
            return previous - timedelta(seconds=self.config.overlap_seconds)
        start = self.config.start_date
        if start is None:
            return None
        if isinstance(start, datetime):
            return _as_utc(start)
        return datetime(start.year, start.month, start.day, tzinfo=UTC)

    @staticmethod
    def _cursor(
        previous: datetime | None, newest: datetime | None, started: datetime
    ) -> dict[str, Any] | None:
        """Newest updated-at seen, never past the run's start (later changes may still be landing)."""
        if newest is None:
            return None if previous is None else {"updated_at": previous.isoformat()}
        moment = min(newest, started)
        if previous is not None:
            moment = max(moment, previous)
        return {"updated_at": moment.isoformat()}

    # -- records ------------------------------------------------------------------------
    def _add(self, batch: SourceBatch, raw: str, value: Any) -> None:
        record, problem = self._map(raw, value)
        if record is not None:
            batch.records.append(record)
        if problem is not None:
            self.log.warning("%s", problem.describe(), extra={"adapter": self.name})
            batch.rejections.append(problem)

    def _map(self, raw: str, value: Any) -> tuple[SourceRecord | None, InputProblem | None]:
        ident = str(value.get("id", "")).strip() if isinstance(value, dict) else ""
        document = f"purchase_orders/{ident or '?'}"
        number = str(value.get("po-number") or "") if isinstance(value, dict) else ""
        try:
            po = map_purchase_order(
                value, source=self.name, raw=raw, buyer_id=self.config.buyer, tenant=self.tenant
            )
        except CoupaMappingError as exc:
            problem = InputProblem(
                source=self.name,
                document=document,
                location=f"po-number {number}" if number else "",
                field=exc.field,
                value=exc.value,
                reason=exc.reason,
            )
            return None, problem
        url = f"{self.config.base_url}{PO_PATH}/{po.external_id}"
        return SourceRecord(po=po, raw=raw, document=url), None
