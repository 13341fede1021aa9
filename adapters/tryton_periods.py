"""Billing periods derived from Tryton subscriptions, as Tryton's own invoicing groups them.

Tryton does not store billing periods; it stores what was consumed. Each run of its
consumption job gives a subscription line a `sale.subscription.line.consumption` (its `date`
is the first day of one consumed service period, its `quantity` the line's quantity then) and
moves the line's `next_consumption_date` and `consumed_until` on. Tryton's own invoicing then
puts every not yet invoiced consumption dated on or before an invoice date of the
subscription's `invoice_recurrence` onto that invoice. The same grouping, from the rows read:

1. The invoice dates d0 < d1 < ... are the occurrences of the invoice recurrence anchored at
   the subscription's `invoice_start_date`, else its `start_date` (as Tryton computes
   `next_invoice_date`). Rules by frequency and interval are evaluated here (RFC 5545
   semantics: a monthly rule anchored on the 31st skips shorter months); a rule set that uses
   BY... parts or exclusion rules is reported as a rejection, not guessed.
2. A consumption belongs to the first invoice date on or after its date: the period of d_k
   holds the consumptions dated in (d_{k-1}, d_k].
3. A consumption covers its date up to the day before the line's next consumption, or up to
   the line's `consumed_until` for its latest one, never past the line's or the
   subscription's end date. The period runs from its earliest consumption date to its latest
   covered day; its invoice date is d_k.
4. A period is emitted only once it is complete: every line of the subscription has been
   consumed past d_k (`next_consumption_date` empty or after d_k).
5. Each subscription line gives one billing line: sku = product code, quantity = the sum of its
   consumptions in the period, unit price = the line's unit price (as Tryton invoices it).

Pure functions over the rows `adapters.tryton_billing` reads: no RPC here.
"""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from connector.model import BillingLine, BillingPeriod, Money

BY_PARTS = ("byweekday", "bymonthday", "byyearday", "byweekno", "bymonth", "bysetpos")
_MAX_SKIPS = 400  # a rule that yields nothing this many steps in a row yields nothing more


class UnsupportedSubscription(Exception):
    """A subscription this source cannot turn into billing periods; reported as a rejection."""

    def __init__(self, field: str, value: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.value = value
        self.reason = reason


def _add_months(anchor: date, months: int) -> date | None:
    year, month = divmod(anchor.month - 1 + months, 12)
    year += anchor.year
    if anchor.day > calendar.monthrange(year, month + 1)[1]:
        return None
    return date(year, month + 1, anchor.day)


def _rule_dates(freq: str, interval: int, anchor: date) -> Iterator[date]:
    """Occurrences of one FREQ/INTERVAL rule from its anchor, ascending, endless."""
    skipped = 0
    for step in range(10**6):
        if freq == "daily":
            yield anchor + timedelta(days=step * interval)
            continue
        if freq == "weekly":
            yield anchor + timedelta(weeks=step * interval)
            continue
        months = step * interval * (12 if freq == "yearly" else 1)
        found = _add_months(anchor, months)
        if found is None:
            skipped += 1
            if skipped > _MAX_SKIPS:
                return
            continue
        skipped = 0
        yield found


def invoice_dates(rules: Sequence[dict[str, Any]], anchor: date) -> Iterator[date]:
    """The invoice dates of a recurrence rule set anchored at `anchor`, ascending, de-duplicated."""
    if not rules:
        raise UnsupportedSubscription("invoice_recurrence", "", "the recurrence rule set has no rule")
    generators = []
    for rule in rules:
        used = [part for part in BY_PARTS if rule.get(part)]
        if rule.get("exclusive") or used:
            what = "an exclusion rule" if rule.get("exclusive") else ", ".join(used)
            raise UnsupportedSubscription(
                "invoice_recurrence",
                str(rule.get("set_", "")),
                f"the rule set uses {what}, not evaluated here",
            )
        freq, interval = rule.get("freq"), rule.get("interval")
        if (
            freq not in {"daily", "weekly", "monthly", "yearly"}
            or not isinstance(interval, int)
            or interval < 1
        ):
            raise UnsupportedSubscription(
                "invoice_recurrence", f"{freq}/{interval}", "unknown frequency or interval"
            )
        generators.append(_rule_dates(freq, interval, anchor))
    previous: date | None = None
    for found in heapq.merge(*generators):
        if found != previous:
            previous = found
            yield found


@dataclass(frozen=True)
class _Consumed:
    line_id: int
    start: date
    end: date
    quantity: Decimal


def _covered(
    line: dict[str, Any], dates: list[date], subscription_end: date | None
) -> list[tuple[date, date]]:
    """(start, end) service spans of one line's consumption dates, sorted ascending."""
    ends = [d for d in (line.get("end_date"), subscription_end) if d]
    spans = []
    distinct = sorted(set(dates))
    for index, start in enumerate(distinct):
        if index + 1 < len(distinct):
            end = distinct[index + 1] - timedelta(days=1)
        else:
            end = line.get("consumed_until") or line.get("end_date") or subscription_end or start
        end = min([end, *ends])
        spans.append((start, max(start, end)))
    return spans


def _tidy(quantity: Decimal) -> Decimal:
    """Tryton quantities are floats: 10.0 reads as 10, 2.5 stays 2.5."""
    if quantity == quantity.to_integral_value():
        return quantity.quantize(Decimal(1))
    return quantity.normalize()


def derive_periods(
    subscription: dict[str, Any],
    lines: list[dict[str, Any]],
    consumptions_by_line: dict[int, list[dict[str, Any]]],
    rules: list[dict[str, Any]],
    *,
    source: str,
    tenant: str,
    customer_field: str,
    since: date | None,
) -> list[BillingPeriod]:
    """The complete billing periods of one subscription that end on or after `since`.

    Raises UnsupportedSubscription when the subscription cannot be derived (no customer value,
    a product without a code, a recurrence this module does not evaluate).
    """
    party = subscription.get("party.") or {}
    customer_ref = party.get(customer_field)
    if customer_ref in (None, "", False):
        raise UnsupportedSubscription(f"party.{customer_field}", "", "the customer has no value here")
    currency = (subscription.get("currency.") or {}).get("code") or ""
    consumed: list[_Consumed] = []
    by_id = {line["id"]: line for line in lines}
    for line in lines:
        rows = consumptions_by_line.get(line["id"], [])
        if not rows:
            continue
        if not (line.get("service.") or {}).get("product.", {}).get("code"):
            raise UnsupportedSubscription(
                "service.product.code", str(line["id"]), "the line's product has no code"
            )
        spans = dict(_covered(line, [row["date"] for row in rows], subscription.get("end_date")))
        consumed.extend(
            _Consumed(line["id"], row["date"], spans[row["date"]], Decimal(row["quantity"])) for row in rows
        )
    if not consumed:
        return []
    anchor = subscription.get("invoice_start_date") or subscription["start_date"]
    last = max(c.start for c in consumed)
    groups: dict[date, list[_Consumed]] = {}
    pending = sorted(consumed, key=lambda c: c.start)
    for invoice_date in invoice_dates(rules, anchor):
        while pending and pending[0].start <= invoice_date:
            groups.setdefault(invoice_date, []).append(pending.pop(0))
        if invoice_date >= last:
            break
    if pending:
        raise UnsupportedSubscription(
            "invoice_recurrence",
            str(subscription.get("invoice_recurrence")),
            f"the recurrence has no invoice date on or after {pending[0].start}",
        )
    periods = []
    for invoice_date, members in sorted(groups.items()):
        if not _complete(lines, invoice_date):
            continue
        period = _period(
            subscription, str(customer_ref), currency, invoice_date, members, by_id, source, tenant
        )
        if period is not None and (since is None or period.period_end >= since):
            periods.append(period)
    return periods


def _complete(lines: Iterable[dict[str, Any]], invoice_date: date) -> bool:
    return all(
        line.get("next_consumption_date") is None or line["next_consumption_date"] > invoice_date
        for line in lines
    )


def _period(
    subscription: dict[str, Any],
    customer_ref: str,
    currency: str,
    invoice_date: date,
    members: list[_Consumed],
    lines: dict[int, dict[str, Any]],
    source: str,
    tenant: str,
) -> BillingPeriod | None:
    quantities: dict[int, Decimal] = {}
    for member in members:
        quantities[member.line_id] = quantities.get(member.line_id, Decimal(0)) + member.quantity
    billing_lines = []
    for line_id in sorted(quantities):
        quantity = quantities[line_id]
        if quantity <= 0:
            continue
        line = lines[line_id]
        product = line["service."]["product."]
        billing_lines.append(
            BillingLine(
                sku=product["code"],
                description=line.get("description") or product.get("name") or "",
                quantity=_tidy(quantity),
                unit_price=Money(amount=Decimal(line.get("unit_price") or 0), currency=currency),
            )
        )
    if not billing_lines:
        return None
    party = subscription.get("party.") or {}
    return BillingPeriod(
        tenant=tenant,
        billing_source=source,
        subscription_id=str(subscription.get("number") or subscription["id"]),
        period_start=min(m.start for m in members),
        period_end=max(m.end for m in members),
        customer_ref=customer_ref,
        customer_name=party.get("name") or "",
        po_number=subscription.get("reference") or None,
        currency=currency,
        lines=tuple(billing_lines),
        invoice_date=invoice_date,
    )
