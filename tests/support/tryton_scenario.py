"""Fill an initialised Tryton database with the vendor's books: run inside the trytond venv.

Usage: python tryton_scenario.py DB_NAME   (with TRYTOND_DATABASE__URI/PATH set)

Creates the company (USD), the euro (at Tryton's test rate of 2 EUR to the dollar, from any
date) and the pound (0.8 GBP to the dollar), the minimal chart, calendar fiscal years around
today and for 2026 (the bundled example's invoice dates) with invoice sequences, customers
CUST-ACME, CUST-GLOBEX, CUST-WAYNE and CUST-HOOLI with invoice addresses, service products PLAN-PRO /
PLAN-ENT / ADDON-SSO (consumed monthly) and TRAINING, monthly and quarterly recurrences, the
sale taxes below (group "Sales", kind sale, on the tax account 6.3.6), and these
subscriptions, all starting 2026-01-01, with consumptions generated up to 2026-04-15:

- A (CUST-ACME, reference PO-1001): monthly invoicing; PLAN-PRO x10 at 100.00 from
  2026-01-01 and ADDON-SSO x10 at 20.00 from 2026-02-01.
- B (CUST-ACME, no reference): quarterly invoicing; PLAN-ENT x2 at 500.00.
- C (CUST-GLOBEX, reference PO-2001): monthly invoicing, ends 2026-02-28 (Tryton closes it);
  PLAN-PRO x5 at 90.00.
- a fourth subscription left in draft, which a billing pull must ignore.

Sale taxes (`account.tax`, rate as a fraction): "VAT 19%", "VAT 20%", "VAT 7%", "Reverse charge"
(0%, with a legal notice), "Exempt" (0%), "NY sales tax 8.875%" and "CA sales tax 7.25%"; and
"Input VAT 19%" of a purchase group, which a customer invoice cannot carry.

Prints one JSON line describing what was created.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from decimal import Decimal

from proteus import Model, Wizard, config

EXAMPLE_YEAR = 2026  # examples/billing.csv issues its invoices in this year


def _fiscal_years(company: object) -> None:
    from trytond.modules.account.tests.tools import create_fiscalyear
    from trytond.modules.account_invoice.tests.tools import set_fiscalyear_invoice_sequences

    today = dt.date.today()
    for year in sorted({today.year - 1, today.year, today.year + 1, EXAMPLE_YEAR}):
        span = (dt.date(year, 1, 1), dt.date(year, 12, 31))
        fiscal_year = set_fiscalyear_invoice_sequences(create_fiscalyear(company, span))
        fiscal_year.click("create_period")


SALE_TAXES = (
    ("VAT 19%", "0.19", None),
    ("VAT 20%", "0.20", None),
    ("VAT 7%", "0.07", None),
    ("Reverse charge", "0", "Reverse charge: the customer accounts for the VAT (Art. 196 VAT Directive)."),
    ("Exempt", "0", "Exempt from VAT."),
    ("NY sales tax 8.875%", "0.08875", None),
    ("CA sales tax 7.25%", "0.0725", None),
)


def _taxes(company: object, account: object) -> dict[str, int]:
    Group = Model.get("account.tax.group")
    Tax = Model.get("account.tax")
    sales = Group(name="Sales", code="SALE", kind="sale")
    sales.save()
    purchases = Group(name="Purchases", code="PURCHASE", kind="purchase")
    purchases.save()
    made = {}
    rows = [(name, rate, notice, sales) for name, rate, notice in SALE_TAXES]
    rows.append(("Input VAT 19%", "0.19", None, purchases))
    for name, rate, notice, group in rows:
        tax = Tax(name=name, description=name, type="percentage", rate=Decimal(rate), group=group)
        tax.company = company
        tax.invoice_account = account
        tax.credit_note_account = account
        if notice:
            tax.legal_notice = notice
        tax.save()
        made[name] = tax.id
    return made


def main(database: str) -> None:
    config.set_trytond(database)
    from trytond.modules.account.tests.tools import create_chart, get_accounts
    from trytond.modules.company.tests.tools import create_company, get_company
    from trytond.modules.currency.tests.tools import get_currency

    Party = Model.get("party.party")
    vendor = Party(name="Vendor Software Ltd")
    vendor.save()
    create_company(party=vendor, currency="USD")
    company = get_company()
    get_currency("EUR")  # the example bills Globex in euros
    pound = get_currency("GBP")  # and Wayne in pounds
    if not pound.rates:
        Model.get("currency.currency.rate")(date=dt.date.min, rate=Decimal("0.8"), currency=pound).save()
    create_chart(company)
    _fiscal_years(company)
    accounts = get_accounts(company)

    taxes = _taxes(company, accounts["tax"])

    customers = {}
    for code, name in (
        ("CUST-ACME", "Acme Corp"),
        ("CUST-GLOBEX", "Globex Inc"),
        ("CUST-WAYNE", "Wayne Enterprises Ltd"),
        ("CUST-HOOLI", "Hooli Inc"),
    ):
        customer = Party(name=name, code=code)
        customer.addresses[0].street = "100 Main St"
        customer.addresses[0].city = "Springfield"
        customer.save()
        customers[code] = customer

    Category = Model.get("product.category")
    category = Category(name="Subscriptions", accounting=True)
    category.account_revenue = accounts["revenue"]
    category.account_expense = accounts["expense"]
    category.save()

    Uom = Model.get("product.uom")
    (unit,) = Uom.find([("name", "=", "Unit")])
    Template = Model.get("product.template")
    products = {}
    for code, name, price in (
        ("PLAN-PRO", "Pro plan seat-month", "100.00"),
        ("PLAN-ENT", "Enterprise plan seat-month", "500.00"),
        ("ADDON-SSO", "SSO add-on seat-month", "20.00"),
        ("TRAINING", "Administrator training day", "900.00"),
    ):
        template = Template(
            name=name,
            code=code,
            default_uom=unit,
            type="service",
            list_price=Decimal(price),
            account_category=category,
        )
        template.save()
        (products[code],) = template.products

    RuleSet = Model.get("sale.subscription.recurrence.rule.set")
    recurrences = {}
    for name, interval in (("Monthly", 1), ("Quarterly", 3)):
        rule_set = RuleSet(name=name)
        (rule,) = rule_set.rules
        rule.freq = "monthly"
        rule.interval = interval
        rule_set.save()
        recurrences[name] = rule_set

    Service = Model.get("sale.subscription.service")
    services = {}
    for code, product in products.items():
        if code == "TRAINING":
            continue  # sold once, not subscribed
        service = Service(product=product, consumption_recurrence=recurrences["Monthly"])
        service.save()
        services[code] = service

    Subscription = Model.get("sale.subscription")

    def subscribe(customer, reference, invoice_recurrence, lines, end=None, run=True):
        subscription = Subscription(party=customers[customer])
        if reference:
            subscription.reference = reference
        subscription.start_date = dt.date(2026, 1, 1)
        subscription.end_date = end
        subscription.invoice_recurrence = invoice_recurrence
        for code, quantity, price, start in lines:
            line = subscription.lines.new(service=services[code])
            line.quantity = quantity
            line.unit_price = Decimal(price)
            line.start_date = start
        subscription.save()
        if run:
            subscription.click("quote")
            subscription.click("run")
        return subscription

    jan, feb = dt.date(2026, 1, 1), dt.date(2026, 2, 1)
    sub_a = subscribe(
        "CUST-ACME",
        "PO-1001",
        recurrences["Monthly"],
        [("PLAN-PRO", 10, "100.00", jan), ("ADDON-SSO", 10, "20.00", feb)],
    )
    sub_b = subscribe("CUST-ACME", None, recurrences["Quarterly"], [("PLAN-ENT", 2, "500.00", jan)])
    sub_c = subscribe(
        "CUST-GLOBEX",
        "PO-2001",
        recurrences["Monthly"],
        [("PLAN-PRO", 5, "90.00", jan)],
        end=dt.date(2026, 2, 28),
    )
    draft = subscribe(
        "CUST-ACME", "PO-DRAFT", recurrences["Monthly"], [("PLAN-PRO", 1, "100.00", jan)], run=False
    )

    consume = Wizard("sale.subscription.line.consumption.create")
    consume.form.date = dt.date(2026, 4, 15)
    consume.execute("create_")

    subscriptions = {"a": sub_a, "b": sub_b, "c": sub_c}
    for subscription in subscriptions.values():
        subscription.reload()
    print(
        json.dumps(
            {
                "customers": sorted(customers),
                "subscriptions": {key: s.number for key, s in subscriptions.items()},
                "states": {key: s.state for key, s in subscriptions.items()},
                "draft": draft.id,
                "taxes": taxes,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
