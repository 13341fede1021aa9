"""The `tryton-billing` billing source: billing periods from Tryton `sale.subscription` records.

Tryton does not store billing periods; it stores what was consumed. Each run of its
consumption job gives a subscription line a `sale.subscription.line.consumption` (its `date`
is the first day of one consumed service period, its `quantity` the line's quantity then) and
moves the line's `next_consumption_date` and `consumed_until` on. Tryton's own invoicing then
puts every not yet invoiced consumption dated on or before an invoice date of the
subscription's `invoice_recurrence` onto that invoice. This source derives the same grouping:

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

Only running and closed subscriptions are read. `subscription_id` is the subscription number,
`customer_ref` the party field `customer_field` (its code by default), `po_number` the
subscription's `reference`. The cursor is `{"write_date": ISO}`: the latest create/write time
seen on a subscription, its lines or their consumptions; a pull re-reads every subscription
touched since then (less `overlap_seconds`) and emits all of its periods, which the state
layer de-duplicates by content. A change on the party alone (e.g. a new code) needs a resync.
`since` drops periods that ended before that date (history the connector should not see).
"""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from adapters.tryton_rpc import TrytonRpc, TrytonServerConfig
from connector.errors import InputProblem
from connector.http import RetryPolicy
from connector.model import BillingLine, BillingPeriod, Money
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, BillingBatch, Capability, PullContext

SUBSCRIPTION = "sale.subscription"
LINE = "sale.subscription.line"
CONSUMPTION = "sale.subscription.line.consumption"
RULE = "sale.subscription.recurrence.rule"
_BY_PARTS = ("byweekday", "bymonthday", "byyearday", "byweekno", "bymonth", "bysetpos")
_MAX_SKIPS = 400  # a rule that yields nothing this many steps in a row yields nothing more


class TrytonBillingConfig(TrytonServerConfig):
    """A Tryton database whose running subscriptions are the vendor's billing."""

    type: str = "tryton-billing"
    customer_field: str = Field(default="code", pattern=r"^[a-z_][a-z0-9_]*$")
    since: date | None = None
    overlap_seconds: int = Field(default=300, ge=0)
    batch_size: int = Field(default=100, ge=1)


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
        used = [part for part in _BY_PARTS if rule.get(part)]
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


def _timestamp(row: dict[str, Any]) -> datetime | None:
    stamps = [row.get("write_date"), row.get("create_date")]
    known = [s for s in stamps if isinstance(s, datetime)]
    return max(known) if known else None


class TrytonBillingSource:
    """Reads running and closed Tryton subscriptions and derives their billing periods."""

    kind: ClassVar[AdapterKind] = AdapterKind.BILLING
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.INCREMENTAL})
    Config: ClassVar[type[AdapterConfig]] = TrytonBillingConfig

    def __init__(
        self,
        config: TrytonBillingConfig,
        context: AdapterContext,
        *,
        rpc: TrytonRpc | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._tenant = context.tenant
        self._log = context.logger
        self.rpc = rpc or TrytonRpc.from_config(config, retry=retry, base_dir=context.base_dir)

    # -- pull -----------------------------------------------------------------------------
    def pull(self, context: PullContext) -> Iterator[BillingBatch]:
        """Yield the periods of every subscription touched since the cursor, in batches."""
        previous = self._cursor_time(context.cursor)
        ids = self._changed_subscriptions(previous)
        latest = previous
        chunks = [ids[i : i + self.config.batch_size] for i in range(0, len(ids), self.config.batch_size)]
        for number, chunk in enumerate(chunks or [[]], start=1):
            batch, seen = self._read(chunk)
            if seen and (latest is None or seen > latest):
                latest = seen
            if number == len(chunks or [[]]) and latest is not None:
                batch.cursor = {"write_date": latest.isoformat()}
            yield batch

    def _cursor_time(self, cursor: dict[str, Any] | None) -> datetime | None:
        value = (cursor or {}).get("write_date")
        if not value:
            return None
        try:
            parsed = datetime.fromisoformat(str(value))
        except ValueError:
            self._log.warning("billing %s: ignoring unreadable cursor %r", self.name, value)
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    def _changed_subscriptions(self, since: datetime | None) -> list[int]:
        states = ("state", "in", ["running", "closed"])
        if since is None:
            return [row["id"] for row in self.rpc.search_read(SUBSCRIPTION, [states], [])]
        after = since - timedelta(seconds=self.config.overlap_seconds)
        touched = ["OR", ("write_date", ">=", after), ("create_date", ">=", after)]
        ids = {row["id"] for row in self.rpc.search_read(SUBSCRIPTION, touched, [])}
        ids |= {row["subscription"] for row in self.rpc.search_read(LINE, touched, ["subscription"])}
        for row in self.rpc.search_read(CONSUMPTION, touched, ["line.subscription"]):
            ids.add(row["line."]["subscription"])
        if not ids:
            return []
        return [
            row["id"] for row in self.rpc.search_read(SUBSCRIPTION, [("id", "in", sorted(ids)), states], [])
        ]

    def _read(self, ids: Sequence[int]) -> tuple[BillingBatch, datetime | None]:
        batch = BillingBatch()
        if not ids:
            return batch, None
        customer = f"party.{self.config.customer_field}"
        subscriptions = self.rpc.search_read(
            SUBSCRIPTION,
            [("id", "in", list(ids))],
            [
                "number",
                "reference",
                "state",
                "start_date",
                "end_date",
                "invoice_start_date",
                "invoice_recurrence",
                customer,
                "party.name",
                "currency.code",
                "write_date",
                "create_date",
            ],
        )
        lines = self.rpc.search_read(
            LINE,
            [("subscription", "in", list(ids))],
            [
                "subscription",
                "service.product.code",
                "service.product.name",
                "description",
                "quantity",
                "unit_price",
                "start_date",
                "end_date",
                "consumed_until",
                "next_consumption_date",
                "write_date",
                "create_date",
            ],
        )
        consumptions = self.rpc.search_read(
            CONSUMPTION,
            [("line.subscription", "in", list(ids))],
            ["line", "quantity", "date", "write_date", "create_date"],
        )
        rule_sets = sorted({s["invoice_recurrence"] for s in subscriptions if s.get("invoice_recurrence")})
        rules = self.rpc.search_read(
            RULE, [("set_", "in", rule_sets)], ["set_", "freq", "interval", "exclusive", *_BY_PARTS]
        )
        stamps = [_timestamp(row) for row in (*subscriptions, *lines, *consumptions)]
        seen = max((s for s in stamps if s is not None), default=None)
        by_subscription: dict[int, list[dict[str, Any]]] = {}
        for line in lines:
            by_subscription.setdefault(line["subscription"], []).append(line)
        by_line: dict[int, list[dict[str, Any]]] = {}
        for consumption in consumptions:
            by_line.setdefault(consumption["line"], []).append(consumption)
        by_set: dict[int, list[dict[str, Any]]] = {}
        for rule in rules:
            by_set.setdefault(rule["set_"], []).append(rule)
        for subscription in subscriptions:
            document = f"{SUBSCRIPTION} {subscription.get('number') or subscription['id']}"
            try:
                periods = self._periods(
                    subscription,
                    by_subscription.get(subscription["id"], []),
                    by_line,
                    by_set.get(subscription.get("invoice_recurrence") or 0, []),
                )
                batch.records.extend(periods)
            except UnsupportedSubscription as exc:
                batch.rejections.append(self._problem(document, "", exc.field, exc.value, exc.reason))
            except ValidationError as exc:
                error = exc.errors()[0]
                where = ".".join(str(p) for p in error["loc"])
                batch.rejections.append(
                    self._problem(
                        document, "", where or "period", str(error.get("input", ""))[:80], error["msg"]
                    )
                )
        return batch, seen

    def _problem(self, document: str, location: str, field: str, value: str, reason: str) -> InputProblem:
        return InputProblem(
            source=self.name, document=document, location=location, field=field, value=value, reason=reason
        )

    # -- derivation -----------------------------------------------------------------------
    def _periods(
        self,
        subscription: dict[str, Any],
        lines: list[dict[str, Any]],
        consumptions_by_line: dict[int, list[dict[str, Any]]],
        rules: list[dict[str, Any]],
    ) -> list[BillingPeriod]:
        party = subscription.get("party.") or {}
        customer_ref = party.get(self.config.customer_field)
        if customer_ref in (None, "", False):
            raise UnsupportedSubscription(
                f"party.{self.config.customer_field}", "", "the customer has no value here"
            )
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
                _Consumed(line["id"], row["date"], spans[row["date"]], Decimal(row["quantity"]))
                for row in rows
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
            if not self._complete(lines, invoice_date):
                continue
            period = self._period(subscription, str(customer_ref), currency, invoice_date, members, by_id)
            if period is not None and (self.config.since is None or period.period_end >= self.config.since):
                periods.append(period)
        return periods

    @staticmethod
    def _complete(lines: Iterable[dict[str, Any]], invoice_date: date) -> bool:
        return all(
            line.get("next_consumption_date") is None or line["next_consumption_date"] > invoice_date
            for line in lines
        )

    def _period(
        self,
        subscription: dict[str, Any],
        customer_ref: str,
        currency: str,
        invoice_date: date,
        members: list[_Consumed],
        lines: dict[int, dict[str, Any]],
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
            tenant=self._tenant,
            billing_source=self.name,
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
