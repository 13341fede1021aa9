"""The canonical billing period: what a billing system means to invoice for one subscription period."""

from __future__ import annotations

from datetime import date

from pydantic import Field, model_validator

from connector.model.base import CurrencyCode, ExactDecimal, Frozen, Money, cached, lines_total
from connector.tax import LineTax


class BillingLine(Frozen):
    """One charge of a billing period, net of tax.

    `tax` is the tax the billing system states for the line, if any. `line_amount` is the net
    amount it states for the line when that is not exactly unit price times quantity (a price
    stated tax-inclusive and converted to net); it wins over the product.
    """

    sku: str
    description: str = ""
    quantity: ExactDecimal = Field(gt=0)
    unit_price: Money
    tax: LineTax | None = None
    line_amount: Money | None = None

    @property
    def amount(self) -> Money:
        return self.line_amount if self.line_amount is not None else self.unit_price.times(self.quantity)


class BillingPeriod(Frozen):
    """A subscription billing record: what the vendor means to invoice for one period."""

    tenant: str = "default"
    billing_source: str
    subscription_id: str
    period_start: date
    period_end: date
    customer_ref: str
    customer_name: str = ""
    po_number: str | None = None
    currency: CurrencyCode
    lines: tuple[BillingLine, ...] = Field(min_length=1)
    invoice_date: date | None = None
    status: str = "open"

    @model_validator(mode="after")
    def _consistent(self) -> BillingPeriod:
        if self.period_end < self.period_start:
            raise ValueError(f"period ends {self.period_end} before it starts {self.period_start}")
        for line in self.lines:
            if line.unit_price.currency != self.currency:
                raise ValueError(
                    f"line {line.sku} is in {line.unit_price.currency}, period in {self.currency}"
                )
        return self

    @cached
    def key(self) -> str:
        return f"{self.tenant}/{self.billing_source}/{self.subscription_id}/{self.period_start.isoformat()}"

    @cached
    def total(self) -> Money:
        return lines_total(self.currency, self.lines)
