"""A JsonProc API on 127.0.0.1: bearer API key, `/v1/orders` listed oldest change first."""

from __future__ import annotations

import base64
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.testing.sandbox import Reply, Request, Sandbox


def _token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def _offset(token: str) -> int:
    return int(json.loads(base64.urlsafe_b64decode(token.encode()))["offset"])


class JsonProcSandbox(Sandbox):
    """One JsonProc tenant holding orders; `add_order` stamps each with a later `updated_at`."""

    def __init__(self, api_key: str = "jp-sandbox-key-0123456789", max_limit: int = 50) -> None:
        super().__init__()
        self.api_key = api_key
        self.max_limit = max_limit
        self.orders: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._clock = datetime(2026, 1, 1, tzinfo=UTC)

    def add_order(self, **fields: Any) -> dict[str, Any]:
        """Store an order (one line unless `lines` is given); returns it for further changes."""
        with self.lock:
            n = next(self._ids)
            self._clock += timedelta(seconds=1)
            order: dict[str, Any] = {
                "id": f"ord_{n}",
                "number": f"JP-{n:05d}",
                "status": "approved",
                "currency": "USD",
                "buyer": {"id": "acme", "name": "Acme Corp"},
                "terms": {"code": "NET30", "days": 30},
                "updated_at": self._clock.isoformat().replace("+00:00", "Z"),
                "lines": [{"line": 1, "sku": "PLAN-PRO", "quantity": "3", "unit_price": "49.00"}],
            }
            order.update(fields)
            self.orders[order["id"]] = order
            return order

    def handle(self, request: Request) -> Reply:
        if request.header("authorization") != f"Bearer {self.api_key}":
            return Reply(401, {"error": "invalid_api_key"})
        if request.method != "GET" or request.path != "/v1/orders":
            return Reply(404, {"error": "not_found"})
        with self.lock:
            chosen = sorted(self.orders.values(), key=lambda o: (o["updated_at"], o["id"]))
        since, number = request.arg("updated_since"), request.arg("number")
        if since:
            moment = datetime.fromisoformat(since)
            chosen = [
                o for o in chosen if datetime.fromisoformat(o["updated_at"].replace("Z", "+00:00")) >= moment
            ]
        if number:
            chosen = [o for o in chosen if o["number"] == number]
        limit = min(self.max_limit, int(request.arg("limit") or self.max_limit))
        offset = _offset(request.arg("page_token") or _token(0))
        page = chosen[offset : offset + limit]
        more = offset + limit < len(chosen)
        return Reply(200, {"orders": page, "next_page_token": _token(offset + limit) if more else None})
