"""The canonical model every adapter maps into: purchase orders, billing periods, matches, plans.

All models are frozen pydantic v2 models. Money is always `Decimal` plus an ISO 4217 code;
datetimes are timezone-aware UTC. One module a concept, every public name importable from here:

- `acknowledgements`: the `PoAcknowledgement` (accept or reject) we send a buyer;
- `base`: the frozen base model, currency codes, UTC datetimes, `Money`, `utcnow`;
- `parties`: `Address`, `Party` (buyer or seller on an invoice), `PaymentTerms`;
- `orders`: `PurchaseOrder`, its `POLine`s and `POStatus`;
- `billing`: `BillingPeriod` and its `BillingLine`s;
- `matching`: `MatchResult`, `MatchStatus` and the `Reason`s of an outcome;
- `invoices`: `InvoicePlan` (an invoice or a `DocumentType.CREDIT_NOTE` naming the
  `CreditedInvoice`), its `InvoiceLine`s, and the `RemoteRef` a sink reports.
"""

from connector.model.acknowledgements import AckDecision, PoAcknowledgement, acknowledgement_id
from connector.model.base import CurrencyCode, Frozen, Money, UtcDateTime, utcnow
from connector.model.billing import BillingLine, BillingPeriod
from connector.model.invoices import (
    CreditedInvoice,
    DocumentType,
    InvoiceLine,
    InvoicePlan,
    Reissue,
    RemoteRef,
)
from connector.model.matching import MatchResult, MatchStatus, Reason
from connector.model.orders import POLine, POStatus, PurchaseOrder, po_key
from connector.model.parties import Address, Party, PaymentTerms

__all__ = [
    "AckDecision",
    "Address",
    "BillingLine",
    "BillingPeriod",
    "CreditedInvoice",
    "CurrencyCode",
    "DocumentType",
    "Frozen",
    "InvoiceLine",
    "InvoicePlan",
    "MatchResult",
    "MatchStatus",
    "Money",
    "POLine",
    "POStatus",
    "Party",
    "PaymentTerms",
    "PoAcknowledgement",
    "PurchaseOrder",
    "Reason",
    "Reissue",
    "RemoteRef",
    "UtcDateTime",
    "acknowledgement_id",
    "po_key",
    "utcnow",
]
