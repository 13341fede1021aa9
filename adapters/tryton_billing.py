"""The `tryton-billing` billing source: billing periods from Tryton `sale.subscription` records.

Tryton does not store billing periods; it stores what was consumed (`sale.subscription.line.
consumption`) and invoices the consumptions dated up to each date of a subscription's invoice
recurrence. This source reads subscriptions, their lines, consumptions and recurrence rules,
and `adapters.tryton_periods` derives the periods Tryton's own invoicing would make of them.

Only running and closed subscriptions are read. `subscription_id` is the subscription number,
`customer_ref` the party field `customer_field` (its code by default), `po_number` the
subscription's `reference`. The cursor is `{"write_date": ISO}`: the latest create/write time
seen on a subscription, its lines or their consumptions; a pull re-reads every subscription
touched since then (less `overlap_seconds`) and emits all of its periods, which the state
layer de-duplicates by content. A change on the party alone (e.g. a new code) needs a resync.
`since` drops periods that ended before that date (history the connector should not see).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field, ValidationError

from adapters.tryton_periods import BY_PARTS, UnsupportedSubscription, derive_periods, invoice_dates
from adapters.tryton_rpc import TrytonRpc, TrytonServerConfig
from connector.errors import InputProblem
from connector.http import RetryPolicy
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, BillingBatch, Capability, PullContext

__all__ = ["TrytonBillingConfig", "TrytonBillingSource", "UnsupportedSubscription", "invoice_dates"]

SUBSCRIPTION = "sale.subscription"
LINE = "sale.subscription.line"
CONSUMPTION = "sale.subscription.line.consumption"
RULE = "sale.subscription.recurrence.rule"


class TrytonBillingConfig(TrytonServerConfig):
    """A Tryton database whose running subscriptions are the vendor's billing."""

    type: str = "tryton-billing"
    customer_field: str = Field(default="code", pattern=r"^[a-z_][a-z0-9_]*$")
    since: date | None = None
    overlap_seconds: int = Field(default=300, ge=0)
    batch_size: int = Field(default=100, ge=1)


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
            RULE, [("set_", "in", rule_sets)], ["set_", "freq", "interval", "exclusive", *BY_PARTS]
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
                periods = derive_periods(
                    subscription,
                    by_subscription.get(subscription["id"], []),
                    by_line,
                    by_set.get(subscription.get("invoice_recurrence") or 0, []),
                    source=self.name,
                    tenant=self._tenant,
                    customer_field=self.config.customer_field,
                    since=self.config.since,
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
