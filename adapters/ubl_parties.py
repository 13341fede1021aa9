"""The parties of a Peppol BIS Billing 3.0 invoice: the seller (BG-4) with its payment means
(BG-16), the buyer (BG-7) as the customer master and the PO's bill-to state it, and the delivery
(BG-13) to the PO's ship-to. Tax ids are printed as stated; the rules judge them."""

from __future__ import annotations

import re

from lxml import etree

from adapters.ubl_xml import cac, cbc
from connector.model import Address, InvoicePlan, Party

CREDIT_TRANSFER = "30"  # UNCL4461
_ALPHA2 = re.compile(r"^[A-Za-z]{2}$")


def _country(parent: etree._Element, country: str) -> None:
    country = country.strip()
    if not country:
        return
    element = cac(parent, "Country")
    if _ALPHA2.match(country):
        cbc(element, "IdentificationCode", country.upper())
    else:
        cbc(element, "Name", country)


def _address(parent: etree._Element, tag: str, address: Address) -> None:
    element = cac(parent, tag)
    lines = [line for line in address.lines if line.strip()]
    if lines:
        cbc(element, "StreetName", lines[0])
    if len(lines) > 1:
        cbc(element, "AdditionalStreetName", lines[1])
    if address.city:
        cbc(element, "CityName", address.city)
    if address.postal_code:
        cbc(element, "PostalZone", address.postal_code)
    if address.region:
        cbc(element, "CountrySubentity", address.region)
    if len(lines) > 2:
        # Peppol carries one address line (BT-162/BT-165); the rest of the street joins it.
        cbc(cac(element, "AddressLine"), "Line", ", ".join(lines[2:]))
    _country(element, address.country)


def _endpoint(party: etree._Element, who: Party | None) -> None:
    if who is not None and who.endpoint_id:
        cbc(party, "EndpointID", who.endpoint_id, schemeID=who.endpoint_scheme)


def _tax_scheme(party: etree._Element, company_id: str, scheme: str) -> None:
    if company_id:
        element = cac(party, "PartyTaxScheme")
        cbc(element, "CompanyID", company_id)
        cbc(cac(element, "TaxScheme"), "ID", scheme)


def _legal_entity(party: etree._Element, name: str, registration_id: str) -> None:
    legal = cac(party, "PartyLegalEntity")
    cbc(legal, "RegistrationName", name)
    if registration_id:
        cbc(legal, "CompanyID", registration_id)


def _contact(party: etree._Element, name: str, telephone: str, email: str) -> None:
    if name or telephone or email:
        contact = cac(party, "Contact")
        if name:
            cbc(contact, "Name", name)
        if telephone:
            cbc(contact, "Telephone", telephone)
        if email:
            cbc(contact, "ElectronicMail", email)


def supplier_party(root: etree._Element, supplier: Party) -> None:
    """The seller: endpoint, name, address, VAT and tax registration ids, legal entity, contact."""
    party = cac(cac(root, "AccountingSupplierParty"), "Party")
    _endpoint(party, supplier)
    cbc(cac(party, "PartyName"), "Name", supplier.legal_name)
    if supplier.address is not None:
        _address(party, "PostalAddress", supplier.address)
    _tax_scheme(party, supplier.vat_id, "VAT")
    _tax_scheme(party, supplier.tax_registration_id, "TAX")
    _legal_entity(party, supplier.legal_name, supplier.legal_registration_id)
    _contact(party, supplier.contact_name, supplier.contact_telephone, supplier.contact_email)


def customer_address(plan: InvoicePlan) -> Address | None:
    """The buyer's postal address: the PO's bill-to where there is one, its country from the master."""
    master = plan.buyer.address if plan.buyer is not None else None
    bill_to = plan.bill_to
    if bill_to is None:
        return master
    if not bill_to.country.strip() and master is not None and master.country:
        return bill_to.model_copy(update={"country": master.country})
    return bill_to


def customer_name(plan: InvoicePlan) -> str:
    """The buyer's legal name from the master, else the plan's customer name, else its reference."""
    if plan.buyer is not None and plan.buyer.legal_name:
        return plan.buyer.legal_name
    return plan.customer_name or plan.customer_ref


def customer_party(root: etree._Element, plan: InvoicePlan) -> None:
    """The buyer: endpoint, our customer reference, name, address, VAT id, legal entity, e-mail."""
    buyer = plan.buyer
    party = cac(cac(root, "AccountingCustomerParty"), "Party")
    _endpoint(party, buyer)
    cbc(cac(party, "PartyIdentification"), "ID", plan.customer_ref)
    name = customer_name(plan)
    cbc(cac(party, "PartyName"), "Name", name)
    address = customer_address(plan)
    if address is not None:
        _address(party, "PostalAddress", address)
    if buyer is not None:
        _tax_scheme(party, buyer.vat_id, "VAT")
    _legal_entity(party, name, buyer.legal_registration_id if buyer is not None else "")
    email = (buyer.contact_email if buyer is not None else "") or (plan.bill_to.email if plan.bill_to else "")
    _contact(party, "", "", email)


def delivery(root: etree._Element, ship_to: Address) -> None:
    """Where the service is delivered: the ship-to with its country, else its name only."""
    # A deliver-to address needs its country (BR-57); without one only the name is stated.
    if not ship_to.country.strip() and not ship_to.name:
        return
    delivery = cac(root, "Delivery")
    if ship_to.country.strip():
        _address(cac(delivery, "DeliveryLocation"), "Address", ship_to)
    if ship_to.name:
        cbc(cac(cac(delivery, "DeliveryParty"), "PartyName"), "Name", ship_to.name)


def payment_means(root: etree._Element, plan: InvoicePlan, supplier: Party) -> None:
    """A credit transfer to the seller's account, paid with the invoice number as reference."""
    # A credit transfer must name the account (BR-61): without one, no payment means is stated.
    if not supplier.payment_account_id:
        return
    means = cac(root, "PaymentMeans")
    cbc(means, "PaymentMeansCode", CREDIT_TRANSFER, name="Credit transfer")
    cbc(means, "PaymentID", plan.invoice_number)
    account = cac(means, "PayeeFinancialAccount")
    cbc(account, "ID", supplier.payment_account_id)
    if supplier.payment_account_name:
        cbc(account, "Name", supplier.payment_account_name)
    if supplier.payment_bank_id:
        cbc(cac(account, "FinancialInstitutionBranch"), "ID", supplier.payment_bank_id)
