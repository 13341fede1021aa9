"""The invoice a Tryton credit note credits: checked before anything is created (no server)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from adapters.tryton_credit import TrytonCredits
from adapters.tryton_sink import TrytonSink
from connector.errors import RejectedError
from connector.kinds import Capability
from connector.model import InvoicePlan
from connector.planning import plan_credit_note
from tests.support.factories import make_plan

INVOICE = make_plan(7, sink="erp")  # PLAN-PRO x 2 at 100.00 USD


class Books:
    """A Tryton holding invoice 5, `INVOICE` as the sink pushed it, with these changes."""

    def __init__(self, **invoice: Any) -> None:
        self.invoice = {
            "id": 5,
            "type": "out",
            "state": "posted",
            "description": f"{INVOICE.invoice_number} PO {INVOICE.po_number}",
            "currency.": {"code": "USD"},
            "invoice_date": date(2026, 2, 1),
            "accounting_date": None,
            **invoice,
        }
        self.lines = [
            {
                "id": 11,
                "product.": {"code": "PLAN-PRO"},
                "quantity": Decimal("2.0"),
                "unit_price": Decimal("100.00"),
            }
        ]

    def search_read(self, model: str, domain: Any, fields: Any, *, limit: int | None = None) -> Any:
        if model == "account.invoice":
            return [self.invoice] if domain == [("id", "=", self.invoice["id"])] else []
        assert model == "account.invoice.line" and domain[0] == ("invoice", "=", 5)
        return self.lines


def credit() -> InvoicePlan:
    return plan_credit_note(INVOICE, reason="cancelled", issue_date=date(2026, 3, 1), remote_id="5")


def credited(books: Books, invoice_id: int = 5) -> Any:
    return TrytonCredits("erp", books).credited_lines(credit(), invoice_id)  # type: ignore[arg-type]


def test_the_tryton_sink_takes_credit_notes() -> None:
    assert Capability.CREDIT_NOTES in TrytonSink.capabilities


def test_each_line_is_linked_to_the_invoice_line_it_credits_at_the_invoices_tax_date() -> None:
    (line,) = credited(Books()).values()
    assert (line.origin, line.tax_date) == ("account.invoice.line,11", date(2026, 2, 1))


@pytest.mark.parametrize(
    ("changes", "invoice_id", "code", "text"),
    [
        ({}, 6, "credited_invoice_not_found", "Tryton invoice 6 is not that invoice"),
        ({"description": "INV-OTHER PO-1"}, 5, "credited_invoice_not_found", "is not that invoice"),
        ({"type": "in"}, 5, "credited_invoice_not_found", "is not that invoice"),
        ({"state": "draft"}, 5, "credited_invoice_not_posted", "the invoice is draft in Tryton"),
        ({"state": "cancelled"}, 5, "credited_invoice_not_posted", "the invoice is cancelled"),
        ({"currency.": {"code": "EUR"}}, 5, "credit_differs", "in EUR in Tryton, the credit note in USD"),
    ],
)
def test_an_invoice_that_is_not_the_posted_one_credited_is_refused(
    changes: dict[str, Any], invoice_id: int, code: str, text: str
) -> None:
    with pytest.raises(RejectedError, match=text) as refused:
        credited(Books(**changes), invoice_id)
    assert refused.value.provider_code == code


def test_an_invoice_whose_lines_are_not_the_credit_notes_is_refused_naming_both() -> None:
    books = Books()
    books.lines[0]["quantity"] = Decimal("3.0")
    with pytest.raises(
        RejectedError, match=r"\[PLAN-PRO x 3 at 100.00\] are not the credit note's"
    ) as refused:
        credited(books)
    assert refused.value.provider_code == "credit_differs"
