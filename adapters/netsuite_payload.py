"""The netsuite sink's records: a plan as the REST body of its invoice or of its credit memo.

No I/O here. An invoice is upserted by external id, so its body carries everything the record
holds. A credit memo is made by transforming the credited invoice
(`POST .../invoice/{id}/!transform/creditMemo`): NetSuite copies the invoice's customer,
currency, subsidiary and lines and sets `createdFrom`, and the body states what the credit
note says on top (its number, date, memo, the lines with `replace=item` and the tax it
credits). Amounts are written as JSON numbers straight from the Decimal's digits
(`decimal_json`), never through a float.
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from adapters.netsuite_tax import document_name, line_reference, tax_details
from connector.errors import RejectedError
from connector.model import InvoiceLine, InvoicePlan
from connector.tax import TaxCodeMap
from connector.values import format_amount, format_price

if TYPE_CHECKING:
    from adapters.netsuite_config import NetSuiteConfig

EXTERNAL_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_INTERNAL_ID = re.compile(r"^[0-9]{1,20}$")


def decimal_json(payload: Any) -> str:
    """JSON text in which every Decimal is written as a JSON number, digit for digit."""
    nonce = secrets.token_hex(8)

    def encode(value: Any) -> str:
        if isinstance(value, Decimal):
            return f"{nonce}:{value:f}"
        raise TypeError(f"{type(value).__name__} is not JSON serializable")

    text = json.dumps(payload, default=encode, ensure_ascii=False)
    return re.sub(rf'"{nonce}:(-?[0-9.]+)"', r"\1", text)


class RecordMapping:
    """The sink's id tables and tax codes applied to a plan: the bodies it writes."""

    def __init__(self, config: NetSuiteConfig, tax_codes: TaxCodeMap) -> None:
        self.config = config
        self.tax_codes = tax_codes
        self.name = config.name

    def invoice_body(self, plan: InvoicePlan) -> dict[str, Any]:
        """The invoice record of the plan; RejectedError when a ref is not mapped."""
        body = self._document(plan)
        body["dueDate"] = plan.due_date.isoformat()
        if plan.payment_terms is not None and plan.payment_terms.code in self.config.terms_ids:
            body["terms"] = {"id": self.config.terms_ids[plan.payment_terms.code]}
        if self.config.currency_ids:
            body["currency"] = {
                "id": self._mapped(self.config.currency_ids, plan.currency, "currency_ids", plan)
            }
        if self.config.subsidiary:
            body["subsidiary"] = {"id": self.config.subsidiary}
        return body

    def credit_memo_body(self, plan: InvoicePlan) -> dict[str, Any]:
        """The body of the transform that makes the credit note's credit memo.

        Currency, subsidiary and terms are not restated: the transform takes them from the
        invoice, and nothing is due on a credit.
        """
        return self._document(plan)

    def transform_source(self, plan: InvoicePlan) -> str:
        """The credited invoice as the transform URL names it: its internal id as the outbox
        recorded it, else its external id (our invoice number)."""
        credits = plan.credits
        if credits is None:
            raise RejectedError(f"netsuite: {document_name(plan)} names no invoice it credits")
        remote_id = credits.remote_id.strip()
        if _INTERNAL_ID.match(remote_id):
            return remote_id
        if not remote_id and EXTERNAL_ID.match(credits.invoice_number):
            return f"eid:{credits.invoice_number}"
        raise RejectedError(
            f"netsuite sink {self.name!r}: {document_name(plan)} credits invoice "
            f"{credits.invoice_number} whose NetSuite id {remote_id!r} is not an internal id"
        )

    def _document(self, plan: InvoicePlan) -> dict[str, Any]:
        """What an invoice and a credit memo both state: number, customer, date, lines, tax."""
        if not EXTERNAL_ID.match(plan.invoice_number):
            raise RejectedError(
                f"netsuite: {plan.document_type.value.replace('_', ' ')} number "
                f"{plan.invoice_number!r} cannot be an external id "
                "(letters, digits, '_' and '-' only, at most 100)"
            )
        entity = self._mapped(self.config.customer_ids, plan.customer_ref, "customer_ids", plan)
        body: dict[str, Any] = {
            "externalId": plan.invoice_number,
            "tranId": plan.invoice_number,
            "entity": {"id": entity},
            "tranDate": plan.issue_date.isoformat(),
            "memo": plan.memo,
            "item": {"items": [self._line(plan, line) for line in plan.lines]},
        }
        if plan.po_number:
            body["otherRefNum"] = plan.po_number
        if plan.is_taxed:
            body.update(tax_details(plan, self.tax_codes, self.name))
        return body

    def _line(self, plan: InvoicePlan, line: InvoiceLine) -> dict[str, Any]:
        item = self._mapped(self.config.item_ids, line.sku, "item_ids", plan)
        fields: dict[str, Any] = {
            "item": {"id": item},
            "quantity": line.quantity,
            "rate": Decimal(format_price(line.unit_price)),
            "amount": Decimal(format_amount(line.amount)),
            "description": line.description or line.sku,
        }
        if line.tax is not None:
            fields["taxDetailsReference"] = line_reference(line)
        return fields

    def _mapped(self, table: Mapping[str, str], key: str, field: str, plan: InvoicePlan) -> str:
        try:
            return table[key]
        except KeyError:
            raise RejectedError(
                f"netsuite sink {self.name!r}: {document_name(plan)}: no NetSuite internal id "
                f"for {key!r}; add it to {field}"
            ) from None
