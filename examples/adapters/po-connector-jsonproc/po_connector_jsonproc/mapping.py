"""JsonProc order JSON -> canonical PurchaseOrder; every refusal names the field and value."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from connector.model import Money, PaymentTerms, POLine, POStatus, PurchaseOrder
from pydantic import ValidationError

STATUSES = {
    "approved": POStatus.OPEN,
    "sent": POStatus.OPEN,
    "closed": POStatus.CLOSED,
    "cancelled": POStatus.CANCELLED,
    "on_hold": POStatus.ON_HOLD,
}


class OrderProblem(Exception):
    """An order field JsonProc sent that cannot become part of a PurchaseOrder."""

    def __init__(self, field: str, value: Any, reason: str) -> None:
        super().__init__(f"{field}={value!r}: {reason}")
        self.field = field
        self.value = "" if value is None else str(value)
        self.reason = reason


def updated_at(order: dict[str, Any]) -> datetime:
    """The order's `updated_at` as an aware datetime."""
    text = order.get("updated_at")
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise OrderProblem("updated_at", text, "is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise OrderProblem("updated_at", text, "has no UTC offset")
    return moment


def _decimal(field: str, value: Any) -> Decimal:
    if isinstance(value, float):  # JSON numbers are read as Decimal; a float here is a bug upstream
        raise OrderProblem(field, value, "must be a decimal string")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise OrderProblem(field, value, "is not a decimal number") from None
    if not number.is_finite():
        raise OrderProblem(field, value, "is not a finite number")
    return number


def _line(line: Any, index: int, currency: str) -> POLine:
    where = f"lines[{index}]"
    if not isinstance(line, dict):
        raise OrderProblem(where, line, "must be an object")
    quantity = _decimal(f"{where}.quantity", line.get("quantity"))
    if quantity <= 0:
        raise OrderProblem(f"{where}.quantity", line.get("quantity"), "must be greater than zero")
    price = _decimal(f"{where}.unit_price", line.get("unit_price"))
    sku = str(line.get("sku") or "").strip()
    if not sku:
        raise OrderProblem(f"{where}.sku", line.get("sku"), "is missing")
    return POLine(
        line_no=int(line.get("line") or index + 1),
        sku=sku,
        description=str(line.get("description") or ""),
        quantity=quantity,
        unit_price=Money.of(price, currency),
        unit_of_measure=str(line.get("uom") or "EA"),
    )


def to_purchase_order(order: Any, *, source: str, tenant: str, raw: str) -> PurchaseOrder:
    """Map one order object; raises OrderProblem naming the first bad field."""
    if not isinstance(order, dict):
        raise OrderProblem("order", order, "must be an object")
    if not order.get("id"):
        raise OrderProblem("id", order.get("id"), "is missing")
    currency = str(order.get("currency") or "").upper()
    status = STATUSES.get(str(order.get("status") or ""))
    if status is None:
        raise OrderProblem("status", order.get("status"), f"is not one of {', '.join(STATUSES)}")
    lines = order.get("lines")
    if not isinstance(lines, list) or not lines:
        raise OrderProblem("lines", lines, "an order needs at least one line")
    terms = order.get("terms")
    buyer = order.get("buyer")
    if not isinstance(buyer, dict):
        buyer = {}
    try:
        return PurchaseOrder(
            tenant=tenant,
            source=source,
            external_id=str(order.get("id") or ""),
            po_number=str(order.get("number") or ""),
            revision=int(order.get("revision") or 1),
            status=status,
            source_status=str(order.get("status")),
            buyer_id=str(buyer.get("id") or ""),
            buyer_name=str(buyer.get("name") or ""),
            currency=currency,
            payment_terms=(
                PaymentTerms(code=str(terms.get("code")), net_days=int(terms.get("days", 0)))
                if isinstance(terms, dict)
                else None
            ),
            lines=tuple(_line(line, index, currency) for index, line in enumerate(lines)),
            source_updated_at=updated_at(order),
            raw_sha256=hashlib.sha256(raw.encode("utf-8")).hexdigest(),
        )
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "order"
        raise OrderProblem(field, error.get("input"), error["msg"]) from None
