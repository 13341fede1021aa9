"""The content of a UBL Order or OrderChange read into the canonical PurchaseOrder: the order's
references, parties and addresses, its lines (a line's price per base quantity made an exact unit
price, cancelled lines left out), payment terms and delivery period.

Every bad field is a problem on the `FieldReader`, named by `OrderLine N`, field and value; no PO
is built once there is one. Which document it is and which revision it makes is `adapters.ubl_order`.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Context, Inexact

from lxml import etree
from pydantic import ValidationError

from adapters.xml_fields import FieldReader
from connector.currency import is_known_currency
from connector.model import Address, Money, PaymentTerms, POLine, POStatus, PurchaseOrder
from mappings.csv_mapping import parse_payment_terms

CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS = {"cbc": CBC, "cac": CAC}
_EXACT = Context(prec=28, traps=[Inexact])
_CANCELLED_LINE_CODES = frozenset({"4", "cancelled", "deleted"})


def read_purchase_order(
    fields: FieldReader,
    root: etree._Element,
    *,
    kind: str,
    order_id: str,
    external_id: str,
    buyer_id: str,
    revision: int,
    source_version: str,
    tenant: str,
    issued: date | None,
    updated_at: datetime | None,
    raw_sha256: str,
) -> PurchaseOrder | None:
    """The PO an Order or OrderChange (`kind`) states, or None when a field had a problem."""
    currency = fields.currency("", "cbc:DocumentCurrencyCode", ubl_text(root, "cbc:DocumentCurrencyCode"))
    extrinsics = {
        name: value
        for name, path in (
            ("CustomerReference", "cbc:CustomerReference"),
            ("AccountingCost", "cbc:AccountingCost"),
            ("QuotationReference", "cac:QuotationDocumentReference/cbc:ID"),
            ("ContractReference", "cac:Contract/cbc:ID"),
        )
        if (value := ubl_text(root, path))
    }
    lines: list[POLine] = []
    for position, line in enumerate(root.iterfind("cac:OrderLine", NS), start=1):
        item = line.find("cac:LineItem", NS)
        if item is None:
            fields.problem(f"OrderLine #{position}", "cac:LineItem", "", "is required")
            continue
        if ubl_text(item, "cbc:LineStatusCode").casefold() in _CANCELLED_LINE_CODES:
            continue
        if (po_line := _line(fields, item, position, currency)) is not None:
            lines.append(po_line)
    if not lines and not fields.problems:
        fields.problem("", "cac:OrderLine", "", f"an {kind} needs at least one line")
    period = "cac:Delivery/cac:RequestedDeliveryPeriod"
    term_start = fields.date("", f"{period}/cbc:StartDate", ubl_text(root, f"{period}/cbc:StartDate"))
    term_end = fields.date("", f"{period}/cbc:EndDate", ubl_text(root, f"{period}/cbc:EndDate"))
    starts = [line.service_start for line in lines if line.service_start]
    ends = [line.service_end for line in lines if line.service_end]
    buyer_party = root.find("cac:BuyerCustomerParty/cac:Party", NS)
    billing_party = root.find("cac:AccountingCustomerParty/cac:Party", NS)
    values = {
        "tenant": tenant,
        "source": fields.source,
        "external_id": external_id,
        "po_number": order_id,
        "revision": revision,
        "source_version": source_version,
        "status": POStatus.OPEN,
        "source_status": kind,
        "buyer_id": buyer_id,
        "buyer_name": _party_name(buyer_party),
        "bill_to": _address(fields, billing_party if billing_party is not None else buyer_party, "BillTo"),
        "ship_to": _address(
            fields, root.find("cac:Delivery/cac:DeliveryLocation", NS), "ShipTo", "cac:Address"
        ),
        "currency": currency,
        "payment_terms": _payment_terms(root, extrinsics),
        "term_start": term_start or (min(starts) if starts else None),
        "term_end": term_end or (max(ends) if ends else None),
        "issued_on": issued,
        "lines": tuple(lines),
        "comments": "\n".join(ubl_text(note) for note in root.iterfind("cbc:Note", NS) if ubl_text(note)),
        "source_updated_at": updated_at,
        "raw_sha256": raw_sha256,
        "extrinsics": extrinsics,
    }
    return fields.purchase_order(values, whole=kind)


def _line(fields: FieldReader, item: etree._Element, position: int, currency: str) -> POLine | None:
    number_text = ubl_text(item, "cbc:ID")
    line_no = fields.integer(f"OrderLine #{position}", "cac:LineItem/cbc:ID", number_text, minimum=1)
    where = f"OrderLine {number_text or f'#{position}'}"
    before = len(fields.problems)
    quantity_element = item.find("cbc:Quantity", NS)
    quantity = fields.decimal(where, "cbc:Quantity", ubl_text(quantity_element), required=True, positive=True)
    unit = (quantity_element.get("unitCode", "") if quantity_element is not None else "").strip() or "EA"
    sku = ubl_text(item, "cac:Item/cac:SellersItemIdentification/cbc:ID") or ubl_text(
        item, "cac:Item/cac:StandardItemIdentification/cbc:ID"
    )
    if not sku:
        fields.problem(where, "cac:Item/cac:SellersItemIdentification/cbc:ID", "", "is required")
    price_element = item.find("cac:Price/cbc:PriceAmount", NS)
    price = fields.decimal(where, "cac:Price/cbc:PriceAmount", ubl_text(price_element), required=True)
    price_currency = price_element.get("currencyID", "") if price_element is not None else ""
    # A bad order currency is reported once, not again on every line.
    if price_element is not None and is_known_currency(currency) and price_currency != currency:
        fields.problem(
            where,
            "cac:Price/cbc:PriceAmount@currencyID",
            price_currency,
            f"differs from the order currency {currency!r}",
        )
    base = fields.decimal(
        where, "cac:Price/cbc:BaseQuantity", ubl_text(item, "cac:Price/cbc:BaseQuantity"), positive=True
    )
    if price is not None and base is not None and base != 1:
        try:
            price = _EXACT.divide(price, base)
        except Inexact:  # a price per base quantity that is no exact unit price
            fields.problem(
                where, "cac:Price/cbc:BaseQuantity", str(base), f"{price} per {base} is no exact unit price"
            )
            price = None
    period = "cac:Delivery/cac:RequestedDeliveryPeriod"
    start = fields.date(where, f"{period}/cbc:StartDate", ubl_text(item, f"{period}/cbc:StartDate"))
    end = fields.date(where, f"{period}/cbc:EndDate", ubl_text(item, f"{period}/cbc:EndDate"))
    if len(fields.problems) > before or line_no is None or quantity is None or price is None:
        return None
    if not is_known_currency(currency):
        return None  # reported once for the order
    try:
        return POLine(
            line_no=line_no,
            sku=sku,
            description=" ".join(
                (ubl_text(item, "cac:Item/cbc:Name") or ubl_text(item, "cac:Item/cbc:Description")).split()
            ),
            quantity=quantity,
            unit_price=Money(amount=price, currency=currency),
            unit_of_measure=unit,
            supplier_part_aux_id=ubl_text(item, "cac:Item/cac:BuyersItemIdentification/cbc:ID"),
            service_start=start,
            service_end=end,
        )
    except ValidationError as exc:
        for error in exc.errors():
            fields.problem(
                where, ".".join(str(p) for p in error["loc"]), str(error.get("input", ""))[:200], error["msg"]
            )
        return None


def _payment_terms(root: etree._Element, extrinsics: dict[str, str]) -> PaymentTerms | None:
    note = ubl_text(root, "cac:PaymentTerms/cbc:Note")
    if not note:
        return None
    try:
        return parse_payment_terms(note)
    except ValueError:  # free text ("within a month of delivery") is kept, not refused
        extrinsics["PaymentTerms"] = note
        return None


def party_id(party: etree._Element | None) -> str:
    """A party's endpoint ID, else its party identification; "" for none."""
    if party is None:
        return ""
    return ubl_text(party, "cbc:EndpointID") or ubl_text(party, "cac:PartyIdentification/cbc:ID")


def _party_name(party: etree._Element | None) -> str:
    if party is None:
        return ""
    return ubl_text(party, "cac:PartyLegalEntity/cbc:RegistrationName") or ubl_text(
        party, "cac:PartyName/cbc:Name"
    )


def _address(
    fields: FieldReader, holder: etree._Element | None, role: str, path: str = "cac:PostalAddress"
) -> Address | None:
    postal = holder.find(path, NS) if holder is not None else None
    if holder is None or postal is None:
        return None
    country = ubl_text(postal, "cac:Country/cbc:IdentificationCode").upper()
    if country and (len(country) != 2 or not country.isalpha() or not country.isascii()):
        fields.problem(
            "", f"{role} cac:Country/cbc:IdentificationCode", country, "not an ISO 3166-1 alpha-2 code"
        )
    lines = [ubl_text(postal, "cbc:StreetName"), ubl_text(postal, "cbc:AdditionalStreetName")]
    lines += [ubl_text(line, "cbc:Line") for line in postal.iterfind("cac:AddressLine", NS)]
    return Address(
        name=_party_name(holder) or ubl_text(holder, "cbc:Name"),
        lines=tuple(line for line in lines if line),
        city=ubl_text(postal, "cbc:CityName"),
        region=ubl_text(postal, "cbc:CountrySubentity"),
        postal_code=ubl_text(postal, "cbc:PostalZone"),
        country=country,
        email=ubl_text(holder, "cac:Contact/cbc:ElectronicMail"),
    )


def ubl_text(element: etree._Element | None, path: str = "") -> str:
    """The stripped text at `path` (cbc:/cac: prefixes) below `element`, or of `element` itself."""
    if element is None:
        return ""
    found = element.find(path, NS) if path else element
    return (found.text or "").strip() if found is not None else ""
