"""How the loopback Xero sandbox writes its answers: exact JSON amounts, `/Date(ms+0000)/` dates
and `ValidationException` bodies (shared by its invoice and credit-note endpoints)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from adapters.xero_payload import dumps_exact
from tests.sandboxes.base import Reply

API = "/api.xro/2.0"
PAGE_SIZE = 100  # what one `page` of a GET answers
VALIDATION_EXCEPTION = {
    "ErrorNumber": 10,
    "Type": "ValidationException",
    "Message": "A validation exception occurred",
}


def ms_date(moment: datetime) -> str:
    """Xero's JSON date form: `/Date(milliseconds since the epoch+0000)/`."""
    millis = (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return f"/Date({millis}+0000)/"


def exact_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    """An answer whose Decimals are written as exact JSON numbers, as Xero writes amounts."""
    return Reply(status, dumps_exact(body), headers or {})


def day_of(value: str) -> datetime:
    """Midnight UTC of the day a `YYYY-MM-DD...` text names."""
    return datetime.combine(date.fromisoformat(value[:10]), datetime.min.time(), tzinfo=UTC)


def validation_reply(messages: list[str]) -> Reply:
    """A 400 ValidationException whose one element carries these messages."""
    elements = [{"ValidationErrors": [{"Message": m} for m in messages]}]
    return exact_reply(400, {**VALIDATION_EXCEPTION, "Elements": elements})


def not_found() -> Reply:
    return Reply(404, {"Title": "Not Found", "Status": 404, "Detail": "The resource could not be found"})


def invalid_json() -> Reply:
    return Reply(400, {"ErrorNumber": 14, "Type": "PostDataInvalidException", "Message": "Invalid JSON"})
