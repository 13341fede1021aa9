"""Who is on a PO or an invoice and on which terms: postal addresses, legal parties, payment terms."""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field

from connector.model.base import Frozen


class Address(Frozen):
    """A postal address with the party name, as on a PO's bill-to or ship-to."""

    name: str = ""
    lines: tuple[str, ...] = ()
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""  # ISO 3166-1 alpha-2 where known
    email: str = ""


class Party(Frozen):
    """A legal entity on an invoice: the buyer from the customer master, or the seller.

    `endpoint_id` with `endpoint_scheme` (a Peppol EAS code such as 9930 German VAT or 0088 GLN)
    is its electronic address; `tax_registration_id` is a non-VAT tax number (e.g. a US EIN).
    """

    legal_name: str
    address: Address | None = None
    vat_id: str = ""
    tax_registration_id: str = ""
    legal_registration_id: str = ""
    endpoint_id: str = ""
    endpoint_scheme: str = ""
    buyer_reference: str = ""
    contact_email: str = ""
    contact_name: str = ""
    contact_telephone: str = ""
    # The seller's payment instructions (BG-16/BG-17): account (IBAN), its name, bank (BIC).
    payment_account_id: str = ""
    payment_account_name: str = ""
    payment_bank_id: str = ""

    @property
    def country(self) -> str:
        return self.address.country if self.address else ""


class PaymentTerms(Frozen):
    """Payment terms of a PO: a code (e.g. NET30) and the days until due."""

    code: str
    net_days: int = Field(ge=0, le=3650)
    discount_percent: Decimal | None = None
    discount_days: int | None = None
