"""What QuickBooks Online answers mean: Faults mapped onto the error tree, and invoices read back.

A Fault comes at the top level of an answer or inside its `QueryResponse`, and inside each failed
item of a `/batch` answer. Throttling (429, codes 3001 / 003001, ThrottleExceeded) is retryable and
parks the row when the wait is longer than the retry policy waits; authentication and
authorization faults are refused credentials; a SystemFault leaves a write uncertain and a read
retryable; every other fault refuses the request for good. A write's 2xx answer that cannot be
read leaves the outcome uncertain; an Invoice element it holds becomes the RemoteRef, its amounts
exact.
"""

from __future__ import annotations

from typing import Any

import requests

from adapters.quickbooks_payload import loads
from connector.errors import AuthenticationError, RejectedError, RemoteError, RetryableError, UncertainError
from connector.http import parse_retry_after
from connector.model import InvoicePlan, RemoteRef
from connector.values import answer_money

DUPLICATE_DOC_NUMBER = "6140"
THROTTLE_CODES = frozenset({"3001", "003001"})


def fault_of(response: requests.Response) -> dict[str, Any] | None:
    """The `Fault` object of an answer, top level or inside `QueryResponse`."""
    try:
        body = loads(response.text)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(body, dict):
        return None
    fault = body.get("Fault")
    if fault is None and isinstance(body.get("QueryResponse"), dict):
        fault = body["QueryResponse"].get("Fault")
    return fault if isinstance(fault, dict) else None


def fault_codes(fault: dict[str, Any]) -> list[str]:
    """The error codes of a Fault, as strings."""
    return [str(error.get("code", "")) for error in fault.get("Error", []) if isinstance(error, dict)]


def fault_text(fault: dict[str, Any]) -> str:
    """`type: message: detail (code N)` for each error of a Fault."""
    parts = []
    for error in fault.get("Error", []):
        if not isinstance(error, dict):
            continue
        text = str(error.get("Message", "")).strip()
        detail = str(error.get("Detail", "")).strip()
        if detail and detail != text:
            text = f"{text}: {detail}" if text else detail
        element = str(error.get("element", "") or "").strip()
        if element:
            text += f" [element {element}]"
        parts.append(f"{text} (code {error.get('code', '?')})")
    return f"{fault.get('type', 'Fault')}: " + "; ".join(parts or ["no error detail"])


def is_throttle(fault: dict[str, Any]) -> bool:
    """True when the Fault says the request was throttled."""
    if THROTTLE_CODES.intersection(fault_codes(fault)):
        return True
    return "ThrottleExceeded" in str(fault.get("Error", ""))


def classify_answer(
    response: requests.Response, *, name: str, throttle_wait: float, max_wait: float
) -> RemoteError | None:
    """The error an answer stands for; None leaves it to the generic rules of the HTTP policy.

    `throttle_wait` is the wait after a throttle that names none; a longer wait than `max_wait`
    parks the row instead of holding the worker.
    """
    status = response.status_code
    if status in (401, 403):
        return None  # generic: one token refresh, then AuthenticationError
    tid = response.headers.get("intuit_tid", "")
    fault = fault_of(response) if status >= 400 or "Fault" in response.text[:200] else None
    if status == 429 or (fault is not None and is_throttle(fault)):
        wait = parse_retry_after(response.headers.get("Retry-After"))
        if wait is None:
            wait = throttle_wait
        text = fault_text(fault) if fault else "429 Too Many Requests"
        return RetryableError(
            f"{name}: QuickBooks throttled the request: {text} (intuit_tid {tid or '-'})",
            retry_after=wait,
            park=wait > max_wait,
            status=status,
            provider_code=",".join(fault_codes(fault)) if fault else "",
            correlation_id=tid,
        )
    if status >= 500 or fault is None:
        return None
    write = response.request.method not in ("GET", "HEAD") if response.request else True
    return fault_error(fault, tid, name=name, throttle_wait=throttle_wait, status=status, write=write)


def fault_error(
    fault: dict[str, Any],
    tid: str,
    *,
    name: str,
    throttle_wait: float,
    status: int | None = None,
    write: bool = True,
) -> RemoteError:
    """The error a Fault stands for (also used for one item of a batch)."""
    codes = fault_codes(fault)
    message = f"{name}: QuickBooks {fault_text(fault)} (intuit_tid {tid or '-'})"
    kind = str(fault.get("type", ""))
    code = ",".join(codes)
    if is_throttle(fault):
        return RetryableError(
            message,
            retry_after=throttle_wait,
            status=status,
            provider_code=code,
            correlation_id=tid,
        )
    if kind in ("AuthenticationFault", "AuthorizationFault"):
        raise AuthenticationError(f"{name}: QuickBooks refused our credentials: {kind}")
    if kind == "SystemFault":
        error_type = UncertainError if write else RetryableError
        return error_type(message, status=status, provider_code=code, correlation_id=tid)
    return RejectedError(message, status=status, provider_code=code, correlation_id=tid)


def written(response: requests.Response, field: str, what: str, tid: str, *, name: str) -> Any:
    """The `field` of a write's answer; a 2xx we cannot read leaves the outcome uncertain."""
    try:
        value = loads(response.text)[field]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        value = None
    if value is None:
        raise UncertainError(
            f"{name}: QuickBooks answered {response.status_code} to the write of {what} "
            f"without {field} (intuit_tid {tid or '-'})",
            status=response.status_code,
            correlation_id=tid,
        )
    return value


def remote_ref(invoice: dict[str, Any], plan: InvoicePlan, tid: str, *, already_existed: bool) -> RemoteRef:
    """What an Invoice or CreditMemo element of an answer says of the plan's document: its Id,
    number and amounts (a credit memo's are positive, as the plan's)."""
    currency = str((invoice.get("CurrencyRef") or {}).get("value") or plan.currency)
    detail = invoice.get("TxnTaxDetail")
    raw_tax = detail.get("TotalTax") if isinstance(detail, dict) else None
    return RemoteRef(
        remote_id=str(invoice.get("Id", "")),
        invoice_number=str(invoice.get("DocNumber", plan.invoice_number)),
        total=answer_money(invoice.get("TotalAmt"), currency),
        tax=answer_money(raw_tax, currency),
        correlation_id=tid,
        already_existed=already_existed,
    )
