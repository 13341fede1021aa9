"""The `tryton` invoice sink: customer invoices in a Tryton database, posted, exactly once.

Tryton has no external id or upsert on `account.invoice`, and its own `number` comes from its
sequence when the invoice is posted. So an invoice carries:

- `reference` = the customer's PO number (Tryton's field for the external origin; it is
  indexed and printed on the invoice);
- `description` = our invoice number first, then the PO and the service period
  (`"INV-0A1B2C3D4E5F PO PO-1 2026-11-01/2026-11-30"`): a posted invoice's description is
  read-only in Tryton, so the number stays where we put it.

`find` searches out invoices by PO number (`reference`) and party in one call per chunk of
plans and recognises ours by the first word of the description; `push` does the same lookup
before it creates anything. An invoice found in draft (created, then the post did not happen:
a crash or a timeout in between) is posted by the next `push` instead of created again, and
`find` does not report drafts while `post` is on, so the core sends that push. Cancelled
invoices count as existing: someone decided about them in Tryton.

Raw RPC `create` runs no on_change, so everything Tryton would fill in (party, invoice
address, receivable and revenue accounts, journal, currency, products, payment term) is
resolved by `adapters.tryton_records`.

Tax: `taxes` maps our treatment (`"S:19"`, `"S"`, `"AE"`, `"SALES_TAX:US-NY"`, `"SALES_TAX"`, as
`connector.tax.TaxCodeMap` reads them) to the name of a Tryton sale tax (`account.tax`, top
level, group kind sale or both or none, the user's company). The names are resolved to ids on
the first taxed push; a name Tryton does not have, a tax with child taxes or a fixed amount, and
a rate key whose tax has another rate ("S:19" on a 7% tax; Z, E, AE, K, G and O need 0%) are a
configuration error naming the key and the name. A line whose treatment has no key is refused
before any call (`tax_code_unmapped`), one whose tax has another rate than the line before the
create (`tax_rate_mismatch`). Each line gets `taxes: [('add', [id])]` and Tryton computes the
invoice's tax lines (`account.invoice.tax`). The billing system is the tax of record, so the
books must hold the plan's tax: where Tryton's amount for a tax differs from the plan's groups
mapped to it (Tryton rounds half-even, per line in "line" mode, and moves rounding remainders
between taxes), the draft's computed tax line gets the plan's amount. Tryton's recomputation
and the check on posting compare a computed tax line by its base, not its amount, so the amount
stays and the invoice posts; a `manual` line would instead come on top of the computed one. A
difference beyond rounding is no rounding: the draft is deleted and the plan refused
(`tax_differs`). `total_amount` and `tax_amount` are read back; an untaxed plan gets no taxes.
Tryton's warning that a line's taxes are not its product's default taxes (`invoice_taxes`) is
confirmed for taxed plans. `check()` lists the company's sale taxes and names the configured
ones missing or at another rate.

Credit notes: Tryton's credit note is an `out` invoice with the credited invoice's lines at
negative quantities, each line's `origin` the line it credits (`adapters.tryton_credit` says
why the sink makes it with one `create` rather than Tryton's credit wizard). It carries our CN-
number first in the description (then "credits INV-...", the PO and the period), the PO as
`reference` and the credit reason as `comment`, so it is found, finished after a crash and
posted exactly as an invoice; its tax is held at the plan's, negated. Tryton reports its
amounts negative; the RemoteRef reports them positive. The credited invoice stays posted with
its amount to pay: Tryton reconciles the two only when a person does (or credits "with refund"
in the wizard, which cancels the invoice).

Posting may raise Tryton warnings; those named in `accept_warnings` are confirmed
(as the Tryton client does, through `res.user.warning`), others reject the invoice. When the
post is refused, the draft is deleted and the error carries Tryton's message.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import Field, field_validator

from adapters.tryton_credit import TrytonCredits, our_number
from adapters.tryton_records import TrytonRecords
from adapters.tryton_rpc import TrytonRpc, TrytonServerConfig, TrytonWarning
from adapters.tryton_tax import TrytonTaxes
from connector.errors import ConfigError, RejectedError, RemoteError, UncertainError
from connector.http import RetryPolicy
from connector.model import InvoicePlan, Money, RemoteRef
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability
from connector.tax import TaxCodeMap
from connector.values import tax_table_key

INVOICE = "account.invoice"
_INVOICE_FIELDS = ["description", "state", "total_amount", "tax_amount", "currency.code", "number"]
LOOKUP_CHUNK = 50
_DONE_STATES = frozenset({"posted", "paid", "cancelled"})
_MAX_WARNINGS = 5
_TAXES_DIFFER_FROM_PRODUCT = "invoice_taxes"  # Tryton's warning: a line's taxes are not its product's


class TrytonSinkConfig(TrytonServerConfig):
    """A Tryton database that receives our customer invoices."""

    type: str = "tryton"
    party_field: str = Field(default="code", pattern=r"^[a-z_][a-z0-9_]*$")
    post: bool = True
    journal: str | None = None
    receivable_account: str | None = None
    revenue_account: str | None = None
    payment_terms: dict[str, str] = Field(default_factory=dict)
    accept_warnings: tuple[str, ...] = ("invoice_payment_term", "invoice_date_future")
    # Our tax treatment -> a Tryton sale tax by name: { "S:19" = "VAT 19%", "AE" = "Reverse charge" }
    taxes: dict[str, str] = Field(default_factory=dict)
    # Tryton has no unique key we can set: after a create whose answer was lost, keep looking
    # for the invoice this long (the server's longest transaction) before calling it uncertain.
    settle_seconds: float = Field(default=60.0, ge=0, le=3600)
    settle_poll_seconds: float = Field(default=2.0, gt=0, le=60)

    @field_validator("taxes")
    @classmethod
    def _tax_keys(cls, value: dict[str, str]) -> dict[str, str]:
        for key, name in value.items():
            tax_table_key("taxes", key, name)
            if not name.strip():
                raise ValueError(f"taxes[{key!r}]: name a Tryton sale tax")
        return value


class TrytonSink:
    """Creates (and posts) `out` invoices in one Tryton database, each exactly once."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP, Capability.CREDIT_NOTES})
    Config: ClassVar[type[AdapterConfig]] = TrytonSinkConfig

    def __init__(
        self,
        config: TrytonSinkConfig,
        context: AdapterContext,
        *,
        rpc: TrytonRpc | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = config.name
        self.config = config
        self._log = context.logger
        self._sleep = sleep
        self.rpc = rpc or TrytonRpc.from_config(config, retry=retry, base_dir=context.base_dir)
        self.records = TrytonRecords(
            config.name,
            self.rpc,
            party_field=config.party_field,
            journal=config.journal,
            receivable_account=config.receivable_account,
            revenue_account=config.revenue_account,
            payment_terms=config.payment_terms,
        )
        self.taxes = TrytonTaxes(config.name, self.rpc, TaxCodeMap(config.taxes), self._log)
        self.credits = TrytonCredits(config.name, self.rpc)

    # -- lookup ---------------------------------------------------------------------------
    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Invoices already holding these plans' numbers, keyed by idempotency key."""
        found: dict[str, RemoteRef] = {}
        for start in range(0, len(plans), LOOKUP_CHUNK):
            chunk = plans[start : start + LOOKUP_CHUNK]
            for plan, row in self._invoices_of(chunk):
                if self.config.post and row["state"] not in _DONE_STATES:
                    continue
                found[plan.idempotency_key] = self._ref(plan, row, existed=True)
        return found

    def _invoices_of(self, plans: Sequence[InvoicePlan]) -> list[tuple[InvoicePlan, dict[str, Any]]]:
        """Each plan paired with the invoice (or credit note) carrying its number, if any."""
        if not plans:
            return []
        by_number = self._by_number({(plan.po_number, plan.customer_ref) for plan in plans})
        return [(plan, by_number[plan.invoice_number]) for plan in plans if plan.invoice_number in by_number]

    def _by_number(self, keys: set[tuple[str, str]]) -> dict[str, dict[str, Any]]:
        """The `out` invoices of these (PO number, customer) pairs by our number (lowest id first).

        A credit note carries its invoice's PO and customer, so one search finds both."""
        domain = [
            ("type", "=", "out"),
            ("reference", "in", sorted({po for po, _ in keys})),
            (f"party.{self.config.party_field}", "in", sorted({customer for _, customer in keys})),
        ]
        rows = self.rpc.search_read(INVOICE, domain, [*_INVOICE_FIELDS, "reference"])
        by_number: dict[str, dict[str, Any]] = {}
        for row in rows:
            by_number.setdefault(our_number(row.get("description")), row)
        return by_number

    def _ref(self, plan: InvoicePlan, row: dict[str, Any], *, existed: bool) -> RemoteRef:
        currency = (row.get("currency.") or {}).get("code") or plan.currency
        sign = -1 if plan.is_credit_note else 1  # Tryton signs a credit note's amounts negative

        def money(value: Any) -> Money | None:
            return None if value is None else Money(amount=sign * Decimal(value), currency=currency)

        return RemoteRef(
            remote_id=str(row["id"]),
            invoice_number=plan.invoice_number,
            total=money(row.get("total_amount")),
            tax=money(row.get("tax_amount")),
            already_existed=existed,
        )

    # -- push -----------------------------------------------------------------------------
    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Create and post the invoice, or finish or report the one already there."""
        self.taxes.tax_names(plan)  # an unmapped treatment is refused before any call
        existing = self._invoices_of([plan])
        if existing:
            _, row = existing[0]
            if row["state"] not in _DONE_STATES:
                self._finish(row["id"], plan, delete_on_refusal=False, draft=row["state"] == "draft")
                row = self._read(row["id"])
            return self._ref(plan, row, existed=True)
        values = self._invoice_values(plan)
        try:
            created = self.rpc.model(INVOICE, "create", [values], write=True)
        except UncertainError:
            return self._settled(plan)  # never create again before the first one could commit
        invoice_id = int(created[0])
        self._finish(invoice_id, plan, delete_on_refusal=True)
        return self._ref(plan, self._read(invoice_id), existed=False)

    def _finish(
        self, invoice_id: int, plan: InvoicePlan, *, delete_on_refusal: bool, draft: bool = True
    ) -> None:
        """An unposted invoice: a draft's tax made the plan's, then posted when `post` is on."""
        if plan.is_taxed and draft:
            try:
                self.taxes.hold_plan_tax(invoice_id, plan)
            except RejectedError as error:
                self._refused(invoice_id, error, delete_on_refusal)
        if self.config.post:
            # The plan's tax is the tax of record: lines taxed otherwise than their product's
            # default taxes are meant so.
            extra = (_TAXES_DIFFER_FROM_PRODUCT,) if plan.is_taxed else ()
            self._post(invoice_id, delete_on_refusal=delete_on_refusal, accept=extra)

    def _settled(self, plan: InvoicePlan) -> RemoteRef:
        """After a create whose answer was lost: wait for its transaction to show, or stay uncertain."""
        deadline = time.monotonic() + self.config.settle_seconds
        while True:
            found = self._invoices_of([plan])
            if found:
                return self.push(plan)  # finishes (posts) the invoice the lost create made
            if time.monotonic() >= deadline:
                raise UncertainError(
                    f"{self.name}: the create of invoice {plan.invoice_number} got no answer and the "
                    f"invoice did not appear within {self.config.settle_seconds:.0f} s"
                )
            self._sleep(self.config.settle_poll_seconds)

    def _read(self, invoice_id: int) -> dict[str, Any]:
        (row,) = self.rpc.model(INVOICE, "read", [invoice_id], _INVOICE_FIELDS)
        return dict(row)

    def _post(self, invoice_id: int, *, delete_on_refusal: bool, accept: tuple[str, ...] = ()) -> None:
        accepted = (*self.config.accept_warnings, *accept)
        for _ in range(_MAX_WARNINGS):
            try:
                self.rpc.model(INVOICE, "post", [invoice_id], write=True)
                return
            except TrytonWarning as warning:
                if warning.key.rsplit(".", 1)[-1] not in accepted:
                    self._refused(invoice_id, warning, delete_on_refusal)
                self.rpc.model(
                    "res.user.warning",
                    "create",
                    [{"user": self.rpc.user_id, "name": warning.key, "always": False}],
                    write=True,
                )
            except RejectedError as error:
                self._refused(invoice_id, error, delete_on_refusal)
        raise RejectedError(
            f"{self.name}: invoice {invoice_id} still asks for confirmations after {_MAX_WARNINGS}"
        )

    def _refused(self, invoice_id: int, error: RejectedError, delete: bool) -> None:
        if delete:
            try:
                self.rpc.model(INVOICE, "delete", [invoice_id], write=True)
            except RemoteError as exc:
                self._log.warning(
                    "sink %s: draft invoice %s could not be deleted: %s", self.name, invoice_id, exc
                )
        raise RejectedError(error.message, status=error.status, provider_code=error.provider_code) from error

    # -- tax ------------------------------------------------------------------------------
    def check(self) -> None:
        """For `doctor`: the server answers, and every configured tax is a sale tax of the
        company at the rate its key states."""
        problems = self.taxes.problems(self.taxes.sale_taxes())
        if problems:
            raise ConfigError(f"{self.name}: " + "; ".join(problems))

    # -- values ---------------------------------------------------------------------------
    def _credited_id(self, plan: InvoicePlan) -> int:
        """The Tryton id of the invoice a credit note credits: as recorded, else by its number."""
        assert plan.credits is not None
        recorded = plan.credits.remote_id.strip()
        if recorded.isdigit():
            return int(recorded)
        if recorded:
            raise RejectedError(
                f"{self.name}: credit note {plan.invoice_number}: {recorded!r} is no Tryton invoice id",
                provider_code="credited_invoice_not_found",
            )
        row = self._by_number({(plan.po_number, plan.customer_ref)}).get(plan.credits.invoice_number)
        if row is None:
            raise RejectedError(
                f"{self.name}: credit note {plan.invoice_number}: Tryton has no invoice "
                f"{plan.credits.invoice_number} to credit",
                provider_code="credited_invoice_not_found",
            )
        return int(row["id"])

    def _invoice_values(self, plan: InvoicePlan) -> dict[str, Any]:
        party = self.records.party(plan.customer_ref)
        products = self.records.products(plan)
        currency = self.records.currency(plan.currency)
        taxes = self.taxes.line_taxes(plan)
        credited = self.credits.credited_lines(plan, self._credited_id(plan)) if plan.credits else {}
        lines = []
        for line in plan.lines:
            product = products[line.sku]
            tax = taxes.get(line.line_no)
            values = {
                "type": "line",
                # Tryton defaults a line to the company's currency; it must be the invoice's.
                "currency": currency,
                "product": product["id"],
                "unit": product["default_uom"],
                "account": self.records.revenue_account(product, line.sku),
                "description": line.description or product.get("name") or line.sku,
                "quantity": -line.quantity if plan.is_credit_note else line.quantity,
                "unit_price": line.unit_price.amount,
                # Raw create runs no on_change: without this the line carries no tax.
                **({"taxes": [("add", [tax.id])]} if tax else {}),
            }
            if line.line_no in credited:  # linked and taxed as Tryton's own credit wizard does
                values["origin"] = credited[line.line_no].origin
                values["taxes_date"] = credited[line.line_no].tax_date
            lines.append(values)
        number = plan.invoice_number
        if plan.credits:
            number = f"{number} credits {plan.credits.invoice_number}"
        memo = f"{number} PO {plan.po_number} {plan.period_start}/{plan.period_end}"
        return {
            "type": "out",
            "party": party["id"],
            "invoice_address": self.records.address(party, plan.customer_ref),
            "account": self.records.receivable(party),
            "journal": self.records.journal(),
            "currency": currency,
            "reference": plan.po_number,
            "description": memo,
            "invoice_date": plan.issue_date,
            "payment_term": self.records.payment_term(plan),
            "comment": plan.memo or None,
            "lines": [("create", lines)],
        }
