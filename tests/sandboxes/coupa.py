"""A Coupa-like Core API on 127.0.0.1: OAuth2 client credentials and `/api/purchase_orders`.

It answers the way Coupa's documentation describes: kebab-case JSON with decimals as strings
and nested `currency` / `supplier` / `order-lines`, `[]` when nothing matches, at most 50
objects per request, filters written `attribute[operator]=value` (dashes or underscores),
`order_by` / `dir`, `limit` / `offset` and `fields=[...]`. Timestamps carry the instance's own
UTC offset, as a US-hosted instance sends them. Tests drive it with `generate`, `update_po`,
`after_page` (change data while a client is paging), `expire_tokens`, a request-rate limit that
answers 429 with Retry-After, and the base class's FaultPlan.
"""

from __future__ import annotations

import json
import secrets
import time
from base64 import b64decode
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from tests.sandboxes.base import Reply, Request, Sandbox

MAX_LIMIT = 50
PACIFIC = timezone(timedelta(hours=-7))
_CONTROLS = {"order_by", "dir", "limit", "offset", "fields", "return_object"}
_TIME_ATTRIBUTES = {"updated-at", "created-at"}
_INT_ATTRIBUTES = {"id", "version"}
_ATTRIBUTES = _TIME_ATTRIBUTES | _INT_ATTRIBUTES | {"po-number", "status", "exported"}
_SKUS = [
    ("PLAN-PRO", "Pro plan, annual seat", "120.00"),
    ("PLAN-TEAM", "Team plan seat", "49.50"),
    ("SUPPORT-PREM", "Premium support", "1500.00"),
    ("STORAGE-1TB", "Extra storage 1 TB", "9.99"),
]


def _errors(message: str, status: int) -> Reply:
    return Reply(status, {"errors": {"error": [message]}})


def _key(name: str) -> str:
    return name.replace("_", "-")


class CoupaSandbox(Sandbox):
    """An in-process Coupa instance holding purchase orders."""

    def __init__(
        self,
        *,
        client_id: str = "po-connector",
        client_secret: str = "sandbox-client-secret-7f3a9c",
        scopes: tuple[str, ...] = (
            "core.purchase_order.read",
            "core.purchase_order.write",
            "core.common.read",
        ),
        token_ttl: int = 86400,
        clock: Callable[[], float] = time.time,
        zone: tzinfo = PACIFIC,
    ) -> None:
        super().__init__()
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = set(scopes)
        self.token_ttl = token_ttl
        self.clock = clock
        self.zone = zone
        self.pos: dict[int, dict[str, Any]] = {}
        self.tokens: dict[str, float] = {}
        self.token_scopes: dict[str, set[str]] = {}
        self.exports: list[tuple[int, int]] = []  # (PO id, version) each PUT exported=true marked
        self.tokens_issued = 0
        self.pages_served = 0
        self.rejected_401 = 0
        self.rate_limited = 0
        self._updated: dict[int, datetime] = {}
        self._next_id = 1000
        self._next_line_id = 50000
        self._last_stamp = datetime(2000, 1, 1, tzinfo=UTC)
        self._hooks: list[tuple[int, Callable[[CoupaSandbox], object]]] = []
        self._limit: tuple[int, float, str | None] | None = None
        self._window: deque[float] = deque()

    # -- test controls ------------------------------------------------------------------
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC).replace(microsecond=0)

    def stamp(self, at: datetime | None = None) -> datetime:
        """A second-precision timestamp, later than every one handed out before."""
        with self.lock:
            moment = (at or self.now()).replace(microsecond=0)
            if moment <= self._last_stamp:
                moment = self._last_stamp + timedelta(seconds=1)
            self._last_stamp = moment
            return moment

    def text_time(self, moment: datetime) -> str:
        return moment.astimezone(self.zone).isoformat()

    def add_po(
        self,
        *,
        po_number: str | None = None,
        status: str = "issued",
        currency: str = "USD",
        lines: list[dict[str, Any]] | None = None,
        updated_at: datetime | None = None,
        payment_term: str | None = "Net 30",
        **extra: Any,
    ) -> dict[str, Any]:
        """Store a PO shaped like Coupa's JSON; `lines` are order-line dicts (defaults to one line)."""
        with self.lock:
            self._next_id += 1
            ident = self._next_id
            moment = self.stamp(updated_at)
            order_lines = [self._line(index, line, currency) for index, line in enumerate(lines or [{}])]
            po: dict[str, Any] = {
                "id": ident,
                "created-at": self.text_time(moment),
                "updated-at": self.text_time(moment),
                "po-number": po_number or str(ident),
                "status": status,
                "version": 1,
                "internal-revision": 1,
                "type": None,
                "exported": False,
                "acknowledged-flag": False,
                "currency": {"id": 1, "code": currency, "decimals": 2},
                "total": str(sum((Decimal(line["total"]) for line in order_lines), Decimal("0.00"))),
                "supplier": {"id": 77, "name": "Cloudly Software Inc", "number": "SUP-0077"},
                "ship-to-address": {
                    "id": 12,
                    "name": "Acme HQ",
                    "street1": "1 Market St",
                    "street2": "Floor 4",
                    "city": "San Francisco",
                    "state": "CA",
                    "postal-code": "94105",
                    "country": {"id": 223, "code": "US", "name": "United States"},
                },
                "ship-to-attention": "Accounts Payable",
                "payment-term": None if payment_term is None else {"id": 3, "code": payment_term},
                "requester": {"id": 9, "login": "jdoe", "email": "jdoe@acme.example"},
                "transmission-method-override": "supplier_default",
                "order-lines": order_lines,
            }
            po.update(extra)
            self.pos[ident] = po
            self._updated[ident] = moment
            return po

    def _line(self, index: int, given: dict[str, Any], currency: str) -> dict[str, Any]:
        given = dict(given)
        self._next_line_id += 1
        sku, description, price = _SKUS[(self._next_line_id + index) % len(_SKUS)]
        quantity = Decimal(given.pop("quantity", str(1 + self._next_line_id % 20)))
        price = given.pop("price", price)
        line: dict[str, Any] = {
            "id": self._next_line_id,
            "line-num": str(index + 1),
            "type": "OrderQuantityLine",
            "description": description,
            "quantity": f"{quantity:.2f}",
            "price": str(price),
            "total": f"{quantity * Decimal(price):.2f}",
            "need-by-date": None,
            "source-part-num": sku,
            "supp-aux-part-num": None,
            "uom": {"id": 1, "code": "EA", "name": "Each"},
            "currency": {"id": 1, "code": currency},
            "item": None,
            "account": {"id": 4, "code": "6100-IT"},
        }
        line.update(given)
        return line

    def generate(self, count: int, *, step: timedelta = timedelta(minutes=1)) -> list[dict[str, Any]]:
        """`count` POs with strictly increasing updated-at, the newest an hour before now."""
        first = self.now() - timedelta(hours=1) - step * count
        return [self.add_po(updated_at=first + step * index) for index in range(count)]

    def update_po(self, ident: int, *, bump_version: bool = True, **changes: Any) -> dict[str, Any]:
        """Change a PO as a buyer would: new updated-at, a new version when the supplier sees it."""
        with self.lock:
            po = self.pos[ident]
            po.update(changes)
            moment = self.stamp()
            if bump_version:
                po["version"] += 1
                po["exported"] = False  # a new version is sent again: Coupa resets the flag
            po["internal-revision"] += 1
            po["updated-at"] = self.text_time(moment)
            self._updated[ident] = moment
            return po

    def ordered_ids(self) -> list[int]:
        """PO ids ordered by updated-at, as `order_by=updated-at&dir=asc` lists them."""
        with self.lock:
            return sorted(self.pos, key=lambda ident: (self._updated[ident], ident))

    def after_page(self, page: int, action: Callable[[CoupaSandbox], object]) -> None:
        """Run `action` right after the `page`-th listing answer (1-based, counting from now)."""
        with self.lock:
            self._hooks.append((self.pages_served + page, action))

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def rate_limit(self, requests: int, window: float, retry_after: str | None = "1") -> None:
        """Answer 429 once more than `requests` API calls arrive within `window` seconds."""
        with self.lock:
            self._limit = (requests, window, retry_after)
            self._window.clear()

    # -- HTTP ---------------------------------------------------------------------------
    def handle(self, request: Request) -> Reply:
        if request.path == "/oauth2/token" and request.method == "POST":
            return self._token(request)
        if not request.path.startswith("/api/"):
            return _errors("not found", 404)
        limited = self._rate_check()
        if limited is not None:
            return limited
        if not self._authorised(request):
            with self.lock:
                self.rejected_401 += 1
            return Reply(401, {"errors": {"error": ["Invalid or expired access token"]}})
        if request.path == "/api/purchase_orders" and request.method == "GET":
            return self._list(request)
        if request.path.startswith("/api/purchase_orders/") and request.method == "GET":
            return self._show(request)
        if request.path.startswith("/api/purchase_orders/") and request.method == "PUT":
            return self._put(request)
        return _errors(f"no route {request.method} {request.path}", 404)

    def _token(self, request: Request) -> Reply:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()}
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        basic = request.header("authorization")
        if basic.lower().startswith("basic "):
            client_id, _, secret = b64decode(basic[6:]).decode("utf-8").partition(":")
        if form.get("grant_type") != "client_credentials":
            return Reply(400, {"error": "unsupported_grant_type"})
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            return Reply(
                401, {"error": "invalid_client", "error_description": "Client authentication failed"}
            )
        scope = form.get("scope", "")
        if not set(scope.split()) <= self.scopes:
            return Reply(400, {"error": "invalid_scope"})
        token = secrets.token_urlsafe(32)
        with self.lock:
            self.tokens[token] = self.clock() + self.token_ttl
            self.token_scopes[token] = set(scope.split())
            self.tokens_issued += 1
        return Reply(
            200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl, "scope": scope}
        )

    def _authorised(self, request: Request) -> bool:
        header = request.header("authorization")
        if not header.startswith("Bearer "):
            return False
        with self.lock:
            expiry = self.tokens.get(header[7:])
        return expiry is not None and self.clock() < expiry

    def _rate_check(self) -> Reply | None:
        with self.lock:
            if self._limit is None:
                return None
            allowed, window, retry_after = self._limit
            now = time.monotonic()
            while self._window and self._window[0] <= now - window:
                self._window.popleft()
            if len(self._window) >= allowed:
                self.rate_limited += 1
                headers = {} if retry_after is None else {"Retry-After": retry_after}
                return Reply(429, {"errors": {"error": ["Rate limit exceeded"]}}, headers)
            self._window.append(now)
        return None

    def _show(self, request: Request) -> Reply:
        tail = request.path.rsplit("/", 1)[1]
        with self.lock:
            po = self.pos.get(int(tail)) if tail.isdigit() else None
            if po is None:
                return _errors("No results match your search criteria.", 404)
            return Reply(200, json.loads(json.dumps(po)))

    def _put(self, request: Request) -> Reply:
        """`PUT /api/purchase_orders/:id?exported=true`: a request of its own, write scope needed."""
        token = request.header("authorization")[7:]
        with self.lock:
            if "core.purchase_order.write" not in self.token_scopes.get(token, set()):
                return _errors("Access denied: the token lacks the core.purchase_order.write scope", 403)
            tail = request.path.rsplit("/", 1)[1]
            po = self.pos.get(int(tail)) if tail.isdigit() else None
            if po is None:
                return _errors("No results match your search criteria.", 404)
            if request.query.get("exported", [""])[0] != "true" or request.body.strip():
                return _errors("Mark exported requires its own request: ?exported=true and no body", 400)
            po["exported"] = True
            po["last-exported-at"] = self.text_time(self.stamp())
            self.exports.append((po["id"], po["version"]))
            return Reply(200, json.loads(json.dumps(po)))

    def _list(self, request: Request) -> Reply:
        try:
            predicates = [self._predicate(name, values[0]) for name, values in request.query.items()
                          if name not in _CONTROLS]  # fmt: skip
            fields = json.loads(request.arg("fields") or "null")
            if fields is not None and not isinstance(fields, list):
                raise ValueError("fields must be a JSON array")
            limit = min(MAX_LIMIT, int(request.arg("limit") or MAX_LIMIT))
            offset = int(request.arg("offset") or 0)
            order = _key(request.arg("order_by") or "id")
            descending = (request.arg("dir") or "asc").lower() == "desc"
        except ValueError as exc:
            return _errors(str(exc), 400)
        if order not in _ATTRIBUTES:
            return _errors(f"cannot order by {order}", 400)
        with self.lock:
            chosen = [ident for ident in self.pos if all(test(ident) for test in predicates)]
            chosen.sort(key=lambda ident: (self._sort_value(ident, order), ident), reverse=descending)
            page = [self.pos[ident] for ident in chosen[offset : offset + limit]]
            body = json.dumps([_project(po, fields) if fields else po for po in page])
            self.pages_served += 1
            due = [action for at, action in self._hooks if at == self.pages_served]
            self._hooks = [(at, action) for at, action in self._hooks if at != self.pages_served]
        for action in due:
            action(self)
        return Reply(200, body)

    def _sort_value(self, ident: int, attribute: str) -> Any:
        if attribute == "updated-at":
            return self._updated[ident]
        value = self.pos[ident].get(attribute)
        return "" if value is None else value

    def _predicate(self, name: str, value: str) -> Callable[[int], bool]:
        attribute, _, operator = name.partition("[")
        attribute, operator = _key(attribute), operator.rstrip("]") or "eq"
        if attribute not in _ATTRIBUTES:
            raise ValueError(f"unknown filter attribute {attribute}")
        if attribute in _TIME_ATTRIBUTES:
            wanted: Any = self._parse_time(value)
        elif attribute in _INT_ATTRIBUTES:
            wanted = int(value)
        else:
            wanted = value
        compare = _OPERATORS.get(operator)
        if compare is None:
            raise ValueError(f"unknown operator {operator}")

        def test(ident: int) -> bool:
            if attribute == "updated-at":
                actual: Any = self._updated[ident]
            elif attribute == "created-at":
                actual = self._parse_time(self.pos[ident]["created-at"])
            else:
                actual = self.pos[ident].get(attribute)
                actual = str(actual).lower() if isinstance(actual, bool) else actual
            if operator == "in":
                return str(actual) in value.split(",")
            return compare(actual, wanted)

        return test

    def _parse_time(self, text: str) -> datetime:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return moment.replace(tzinfo=self.zone) if moment.tzinfo is None else moment


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": lambda a, b: a == b,
    "not_eq": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "lt": lambda a, b: a < b,
    "gt_or_eq": lambda a, b: a >= b,
    "lt_or_eq": lambda a, b: a <= b,
    "in": lambda a, b: False,
}


def _project(value: Any, fields: list[Any]) -> Any:
    """Keep only the requested fields; `{"assoc": [...]}` selects inside an association."""
    if isinstance(value, list):
        return [_project(item, fields) for item in value]
    if not isinstance(value, dict):
        return value
    kept: dict[str, Any] = {}
    for field in fields:
        if isinstance(field, str) and _key(field) in value:
            kept[_key(field)] = value[_key(field)]
        elif isinstance(field, dict):
            for name, inner in field.items():
                if _key(name) in value:
                    kept[_key(name)] = _project(value[_key(name)], inner)
    return kept
