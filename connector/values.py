"""Values as adapters read and write them at the edges, in one place for every adapter.

Amounts, unit prices and rates as invoice documents write them (UBL, cXML, NetSuite).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from connector.currency import minor_unit
from connector.model import Money


def format_amount(money: Money) -> str:
    """A final amount with exactly the currency's minor-unit digits (JPY 0, USD 2, KWD 3)."""
    quantum = minor_unit(money.currency)
    return f"{money.amount.quantize(quantum, ROUND_HALF_UP):f}"


def format_price(money: Money) -> str:
    """A unit price: at least the currency's digits, more when the price has them (never rounded)."""
    quantum = minor_unit(money.currency)
    quantized = money.amount.quantize(quantum, ROUND_HALF_UP)
    if quantized == money.amount:
        return f"{quantized:f}"
    return f"{money.amount.normalize():f}"


def format_percent(rate: Decimal) -> str:
    """A rate as the rules compare it: 19 for 19.00, 8.875 as is."""
    return f"{rate.normalize():f}" if rate else "0"
