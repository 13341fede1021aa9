"""Reconciliation throughput: N billing periods against N purchase orders, in process.

Synthetic data with the shape of a subscription vendor's books: one customer per ten periods,
five subscriptions (SKUs) per customer, each with last year's expired annual PO and this
year's, and two monthly periods per subscription. A quarter of the periods name their PO, PO
lines use the buyer's SKU aliases, and a few periods are billed off the PO price or outside
every term, so all the checks run. Prints periods per second, peak RSS, and the same figures
for a bare loop that only looks the candidates up by customer; then how the run compares with
that loop and with the target of 200,000 periods per second.

    python benchmarks/reconcile.py [--periods N]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from connector.maps import Customer, CustomerMap, SkuMap
from connector.model import BillingLine, BillingPeriod, Money, POLine, POStatus, PurchaseOrder
from connector.reconcile import ReconcileSettings, reconcile

SUBSCRIPTIONS = 5
POS_PER_SUBSCRIPTION = 2  # last year's (expired) and this year's
PERIODS_PER_SUBSCRIPTION = 2  # October and November of this year
PER_CUSTOMER = SUBSCRIPTIONS * PERIODS_PER_SUBSCRIPTION
PRODUCTS = {  # billing SKU -> (the buyer's SKU on POs, unit price)
    "PLAN-PRO": ("CLD-PRO-SEAT", Decimal("40.00")),
    "PLAN-ENT": ("CLD-ENT-SEAT", Decimal("95.00")),
    "ADDON-SSO": ("ADDON-SSO", Decimal("5.00")),
    "ADDON-AUDIT": ("AUD-LOG", Decimal("12.50")),
    "SUPPORT-PREM": ("SUP-PREM", Decimal("150.00")),
}
TARGET = 200_000  # periods per second, in process
MONTHS = ((date(2026, 10, 1), date(2026, 10, 31)), (date(2026, 11, 1), date(2026, 11, 30)))


def build(
    periods_wanted: int, seed: int = 20261101
) -> tuple[list[PurchaseOrder], list[BillingPeriod], CustomerMap]:
    """About `periods_wanted` periods and as many POs (whole customers)."""
    rng = random.Random(seed)
    customers = max(1, periods_wanted // PER_CUSTOMER)
    pos: list[PurchaseOrder] = []
    periods: list[BillingPeriod] = []
    entries = []
    for c in range(customers):
        ref = f"CUST-{c:06d}"
        buyer = f"buyer{c:06d}.example"
        entries.append(Customer(customer_ref=ref, name=f"Customer {c}", buyer_ids=(buyer,)))
        currency = "EUR" if c % 4 == 0 else "USD"
        for s, (sku, (po_sku, price)) in enumerate(PRODUCTS.items()):
            seats = Decimal(rng.randint(1, 200))
            numbers = []
            for year in (2025, 2026):
                number = f"PO-{c:06d}-{s}-{year}"
                numbers.append(number)
                pos.append(
                    PurchaseOrder(
                        source="bench",
                        external_id=number,
                        po_number=number,
                        buyer_id=buyer,
                        status=POStatus.CLOSED if year == 2025 else POStatus.OPEN,
                        currency=currency,
                        term_start=date(year, 1, 1),
                        term_end=date(year, 12, 31),
                        lines=(
                            POLine(
                                line_no=1,
                                sku=po_sku,
                                quantity=seats * 12,
                                unit_price=Money.of(price, currency),
                            ),
                        ),
                    )
                )
            for start, end in MONTHS:
                roll = rng.random()
                billed_price = price + Decimal("1.00") if roll < 0.03 else price  # off the PO price
                if 0.03 <= roll < 0.05:
                    start, end = date(2027, start.month, 1), date(2027, start.month, end.day)  # no PO yet
                periods.append(
                    BillingPeriod(
                        billing_source="bench",
                        subscription_id=f"SUB-{c:06d}-{s}",
                        period_start=start,
                        period_end=end,
                        customer_ref=ref,
                        po_number=numbers[1] if rng.random() < 0.25 else None,
                        currency=currency,
                        lines=(
                            BillingLine(sku=sku, quantity=seats, unit_price=Money.of(billed_price, currency)),
                        ),
                        invoice_date=start,
                    )
                )
    return pos, periods, CustomerMap(entries)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bare_loop(pos: list[PurchaseOrder], periods: list[BillingPeriod], customers: CustomerMap) -> int:
    """Only the dict lookups: PO -> customer, then each period's candidates by customer."""
    by_customer: dict[str | None, list[PurchaseOrder]] = defaultdict(list)
    for po in pos:
        by_customer[customers.customer_for(po)].append(po)
    candidates = 0
    for period in periods:
        candidates += len(by_customer.get(period.customer_ref, ()))
    return candidates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--periods", type=int, default=100_000, help="billing periods (and POs); default 100000"
    )
    args = parser.parse_args()

    started = time.perf_counter()
    pos, periods, customers = build(args.periods)
    built = time.perf_counter() - started
    skus = SkuMap({sku: [po_sku] for sku, (po_sku, _) in PRODUCTS.items()})
    settings = ReconcileSettings(as_of=date(2026, 11, 15))
    print(f"data: {len(periods)} periods, {len(pos)} POs, built in {built:.1f} s", end="; ")
    print(f"peak RSS {peak_rss_mb():.0f} MB")

    started = time.perf_counter()
    candidates = bare_loop(pos, periods, customers)
    bare = time.perf_counter() - started
    print(f"bare loop: {bare:.3f} s, {len(periods) / bare:,.0f} periods/s ({candidates} candidate lookups)")

    started, cpu = time.perf_counter(), time.process_time()
    outcome = reconcile(pos, periods, customers, skus, settings)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    statuses = Counter(result.status.value for result in outcome.results)
    print(
        f"reconcile: {elapsed:.2f} s ({cpu:.2f} s CPU), {len(periods) / elapsed:,.0f} periods/s; "
        f"peak RSS {peak_rss_mb():.0f} MB; {dict(sorted(statuses.items()))}"
    )
    rate = len(periods) / elapsed
    print(f"reconcile / bare loop: {elapsed / bare:.0f}x the time")
    print(f"reconcile / target of {TARGET:,} periods/s: {rate / TARGET:.0%}")


if __name__ == "__main__":
    main()
