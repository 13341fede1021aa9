"""The `jsonproc` PO source: orders from a JsonProc procurement system, changed since the cursor.

JsonProc lists orders oldest change first: `GET /v1/orders?updated_since=T&limit=N` answers
`{"orders": [...], "next_page_token": "..." | null}`, and `page_token` continues the listing.
`updated_since` is inclusive, so the cursor is the newest `updated_at` seen: a resumed run reads
the orders of that instant again (the core drops unchanged ones by content) and misses none.
A page token is never stored in the cursor: JsonProc's tokens expire after an hour.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import requests
from connector.errors import InputError, InputProblem, RetryableError
from connector.http import HttpClient, RetryPolicy
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
from pydantic import Field, field_validator, model_validator

from po_connector_jsonproc.mapping import OrderProblem, to_purchase_order, updated_at

ORDERS = "/v1/orders"


class JsonProcConfig(AdapterConfig):
    """One JsonProc tenant: where it is and which API key reads its orders."""

    type: str = "jsonproc"
    base_url: str
    api_key_env: str | None = None
    api_key_file: Path | None = None
    page_size: int = Field(default=100, ge=1, le=500)
    per_minute: int = Field(default=600, ge=1)
    timeout_connect: float = Field(default=5.0, gt=0)
    timeout_read: float = Field(default=30.0, gt=0)
    max_attempts: int = Field(default=5, ge=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"must be an http(s) URL such as https://acme.jsonproc.example, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_key(self) -> JsonProcConfig:
        if not self.api_key_env and not self.api_key_file:
            raise ValueError("set api_key_env or api_key_file")
        return self


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}", "Accept": "application/json"}


def _listing(response: requests.Response) -> tuple[list[tuple[str, Any]], str | None]:
    """The orders of one answer (raw text and parsed object each) and the next page token."""
    try:
        body = json.loads(response.text, parse_float=Decimal)
        orders, token = body["orders"], body.get("next_page_token")
    except (ValueError, KeyError, TypeError):
        # A 2xx we cannot read is a bad answer to a read: safe to ask again.
        raise RetryableError(f"jsonproc: unreadable order listing ({response.status_code})") from None
    if not isinstance(orders, list):
        raise RetryableError("jsonproc: `orders` is not a list")
    return [(json.dumps(order, default=str, sort_keys=True), order) for order in orders], token


class JsonProcSource:
    """Pulls orders changed since the cursor from JsonProc; fetches one order by number."""

    kind: ClassVar[AdapterKind] = AdapterKind.SOURCE
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.INCREMENTAL, Capability.FETCH_ONE})
    Config: ClassVar[type[AdapterConfig]] = JsonProcConfig

    def __init__(
        self, config: JsonProcConfig, context: AdapterContext, *, retry: RetryPolicy | None = None
    ) -> None:
        self.name = config.name
        self.config = config
        self.tenant = context.tenant
        self.log = context.logger
        key_file = config.api_key_file
        if key_file is not None and not key_file.is_absolute():
            key_file = context.base_dir / key_file
        key = resolve_secret(env=config.api_key_env, file=key_file, key=f"{config.name}.api_key")
        self.http = HttpClient(
            config.base_url,
            name=config.name,
            timeout=(config.timeout_connect, config.timeout_read),
            rate=TokenBucket.per_minute(config.per_minute),
            retry=retry or RetryPolicy(max_attempts=config.max_attempts),
            headers=_bearer(key),
        )

    def pull(self, context: PullContext) -> Iterator[SourceBatch]:
        """One batch per page; each carries the newest `updated_at` seen so far as the cursor."""
        since = (context.cursor or {}).get("updated_since")
        newest: datetime | None = datetime.fromisoformat(since) if since else None
        started = context.started_at.astimezone(UTC)
        params: dict[str, Any] = {"limit": self.config.page_size}
        if since:
            params["updated_since"] = since
        while True:
            response = self.http.request("GET", ORDERS, params=params)
            orders, token = _listing(response)
            batch = SourceBatch(document=f"{self.config.base_url}{ORDERS}")
            for raw, order in orders:
                record, problem = self._map(raw, order)
                if problem is not None:
                    self.log.warning("%s", problem.describe(), extra={"adapter": self.name})
                    batch.rejections.append(problem)
                if record is not None:
                    batch.records.append(record)
                # A refused order moves the cursor too: it is quarantined, not read again.
                moment = _changed(order)
                if moment is not None and (newest is None or moment > newest):
                    newest = min(moment, started)  # later changes may still be landing
            if newest is not None:
                batch.cursor = {"updated_since": newest.isoformat()}
            yield batch
            if not token:
                return
            params["page_token"] = token

    def fetch(self, po_number: str) -> list[SourceRecord]:
        """The order with this number as JsonProc holds it now; empty when there is none."""
        response = self.http.request("GET", ORDERS, params={"number": po_number})
        records = []
        for raw, order in _listing(response)[0]:
            record, problem = self._map(raw, order)
            if problem is not None:
                raise InputError(problem)
            if record is not None and record.po.po_number == po_number:
                records.append(record)
        return records

    def _map(self, raw: str, order: Any) -> tuple[SourceRecord | None, InputProblem | None]:
        ident = str(order.get("id", "?")) if isinstance(order, dict) else "?"
        document = f"{self.config.base_url}{ORDERS}/{ident}"
        try:
            po = to_purchase_order(order, source=self.name, tenant=self.tenant, raw=raw)
        except OrderProblem as exc:
            number = order.get("number", "") if isinstance(order, dict) else ""
            return None, InputProblem(
                source=self.name,
                document=document,
                location=f"order {number}" if number else "",
                field=exc.field,
                value=exc.value,
                reason=exc.reason,
            )
        return SourceRecord(po=po, raw=raw, document=document), None


def _changed(order: Any) -> datetime | None:
    try:
        return updated_at(order) if isinstance(order, dict) else None
    except OrderProblem:
        return None
