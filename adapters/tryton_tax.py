"""The tryton sink's taxes: our treatments mapped to the company's sale taxes by name, checked
against Tryton's rates, put on each line, and the plan's tax held on the draft invoice.

Tryton computes a draft's tax lines itself (rounding half-to-even, with remainders moved
between taxes), so it can be a cent off the plan; the computed tax line of each Tryton tax is
given the plan's amount while the invoice is a draft (it survives the recompute and posting,
which compare tax lines by base). A difference larger than rounding is `tax_differs`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from adapters.tryton_rpc import TrytonRpc
from connector.currency import minor_unit
from connector.errors import ConfigError, RejectedError
from connector.model import InvoicePlan
from connector.tax import ZERO_TAX, TaxCategory, TaxCodeMap, TaxProblem, TaxScheme

INVOICE_TAX = "account.invoice.tax"


@dataclass(frozen=True)
class SaleTax:
    """A Tryton sale tax a treatment maps to: its id, name and rate in percent (19 for 0.19)."""

    id: int
    name: str
    percent: Decimal | None  # None: a fixed-amount tax, which no treatment can map to
    has_children: bool = False


def implied_percent(key: str) -> Decimal | None:
    """The rate a normalised `taxes` key itself states: 19 for "S:19", 0 for the zero-tax
    categories ("AE", "SALES_TAX:E"); None when the key fits any rate ("S", "SALES_TAX:US-NY")."""
    head, _, tail = key.partition(":")
    if head == TaxScheme.SALES_TAX.value:
        head, tail = tail, ""
    try:
        category = TaxCategory(head)
    except ValueError:
        return None
    if tail:
        return Decimal(tail)
    return Decimal(0) if category in ZERO_TAX else None


class TrytonTaxes:
    """The `taxes` setting of one tryton sink against its Tryton company."""

    def __init__(self, sink_name: str, rpc: TrytonRpc, tax_map: TaxCodeMap, log: logging.Logger) -> None:
        self.sink_name = sink_name
        self.rpc = rpc
        self.tax_map = tax_map
        self._log = log
        self._resolved: dict[str, SaleTax] | None = None  # tax name -> the Tryton tax

    def sale_taxes(self) -> dict[str, list[SaleTax]]:
        """The company's top-level sale taxes by name (a name may be used twice)."""
        domain: list[Any] = [
            ("parent", "=", None),
            ["OR", ("group", "=", None), ("group.kind", "in", ["sale", "both"])],
        ]
        company = self.rpc.context.get("company")
        if company:
            domain.append(("company", "=", company))
        rows = self.rpc.search_read("account.tax", domain, ["name", "type", "rate", "childs"])
        found: dict[str, list[SaleTax]] = {}
        for row in rows:
            kind = row.get("type")
            if kind == "percentage":
                percent: Decimal | None = Decimal(row.get("rate") or 0) * 100
            else:
                percent = Decimal(0) if kind == "none" else None
            name = str(row["name"])
            found.setdefault(name, []).append(
                SaleTax(int(row["id"]), name, percent, has_children=bool(row.get("childs")))
            )
        return found

    def problems(self, sale_taxes: dict[str, list[SaleTax]]) -> list[str]:
        """What is wrong with `taxes` against these sale taxes, one text per key."""
        problems = []
        for key, name in self.tax_map.items():
            where = f"taxes[{key!r}] = {name!r}"
            matches = sale_taxes.get(name, [])
            if not matches:
                known = ", ".join(repr(n) for n in sorted(sale_taxes)) or "none"
                problems.append(f"{where}: Tryton has no sale tax of that name (it has {known})")
                continue
            if len(matches) > 1:
                problems.append(f"{where}: {len(matches)} Tryton sale taxes have that name")
                continue
            (tax,) = matches
            stated = implied_percent(key)
            if tax.has_children:
                problems.append(f"{where}: the Tryton tax has child taxes; map a tax without children")
            elif tax.percent is None:
                problems.append(f"{where}: the Tryton tax is a fixed amount, not a rate")
            elif stated is not None and tax.percent != stated:
                problems.append(
                    f"{where}: the Tryton tax is {_percent(tax.percent)}%, the treatment {_percent(stated)}%"
                )
        return problems

    def resolved(self) -> dict[str, SaleTax]:
        """The configured tax names resolved to Tryton taxes, once (ConfigError when one is wrong)."""
        if self._resolved is None:
            sale_taxes = self.sale_taxes()
            problems = self.problems(sale_taxes)
            if problems:
                raise ConfigError(f"{self.sink_name}: " + "; ".join(problems))
            self._resolved = {name: sale_taxes[name][0] for _, name in self.tax_map.items()}
        return self._resolved

    def tax_names(self, plan: InvoicePlan) -> dict[int, str]:
        """Each taxed line's configured Tryton tax name, by line number (no call made)."""
        names: dict[int, str] = {}
        for line in plan.lines:
            if line.tax is None:
                continue
            try:
                names[line.line_no] = self.tax_map.code_for(line.tax)
            except TaxProblem as exc:
                where = f"{self.sink_name}: invoice {plan.invoice_number} line {line.line_no}"
                raise RejectedError(
                    f"{where}: {exc.code}: {exc.detail}",
                    provider_code=exc.code,
                ) from None
        return names

    def line_taxes(self, plan: InvoicePlan) -> dict[int, SaleTax]:
        """Each taxed line's Tryton tax, checked to carry the line's rate."""
        names = self.tax_names(plan)
        if not names:
            return {}
        resolved = self.resolved()
        taxes: dict[int, SaleTax] = {}
        for line in plan.lines:
            if line.tax is None:
                continue
            tax = resolved[names[line.line_no]]
            if tax.percent != line.tax.percent:
                raise RejectedError(
                    f"{self.sink_name}: invoice {plan.invoice_number} line {line.line_no}: "
                    "tax_rate_mismatch: "
                    f"{line.tax.describe()} is mapped to Tryton tax {tax.name!r} at "
                    f"{_percent(tax.percent or Decimal(0))}%",
                    provider_code="tax_rate_mismatch",
                )
            taxes[line.line_no] = tax
        return taxes

    def hold_plan_tax(self, invoice_id: int, plan: InvoicePlan) -> None:
        """Give the draft's computed tax lines the plan's tax, per Tryton tax (negated on a
        credit note, whose lines and tax Tryton signs negative)."""
        taxes = self.line_taxes(plan)
        sign = -1 if plan.is_credit_note else 1
        by_group: dict[tuple[str, str, Decimal | None, str], int] = {}
        lines_of: dict[int, int] = {}
        for line in plan.lines:
            if line.tax is not None:
                tax_id = taxes[line.line_no].id
                by_group[line.tax.group_key()] = tax_id
                lines_of[tax_id] = lines_of.get(tax_id, 0) + 1
        wanted: dict[int, Decimal] = {}
        for group in plan.tax_breakdown:
            rate = None if group.rate is None else group.rate.normalize()
            tax_id = by_group[(group.scheme.value, group.category.value, rate, group.jurisdiction)]
            wanted[tax_id] = wanted.get(tax_id, Decimal(0)) + sign * group.tax_amount
        rows = self.rpc.search_read(
            INVOICE_TAX, [("invoice", "=", invoice_id), ("manual", "=", False)], ["tax", "base", "amount"]
        )
        quantum = minor_unit(plan.currency)
        for tax_id, amount in sorted(wanted.items()):
            held = [row for row in rows if row.get("tax") == tax_id]
            computed = sum((Decimal(row["amount"]) for row in held), Decimal(0))
            difference = amount - computed
            if not difference:
                continue
            if not held or abs(difference) > quantum * (lines_of[tax_id] + 1):
                raise RejectedError(
                    f"{self.sink_name}: invoice {plan.invoice_number}: tax_differs: Tryton computes "
                    f"{computed} {plan.currency} of tax {_tax_name(taxes, tax_id)!r}, the plan carries "
                    f"{amount} {plan.currency}",
                    provider_code="tax_differs",
                )
            largest = max(held, key=lambda row: abs(Decimal(row["base"])))
            self.rpc.model(
                INVOICE_TAX,
                "write",
                [largest["id"]],
                {"amount": Decimal(largest["amount"]) + difference},
                write=True,
            )
            self._log.info(
                "sink %s: invoice %s: tax %r set to the plan's %s %s (Tryton computed %s)",
                self.sink_name,
                plan.invoice_number,
                _tax_name(taxes, tax_id),
                amount,
                plan.currency,
                computed,
            )


def _percent(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _tax_name(taxes: dict[int, SaleTax], tax_id: int) -> str:
    return next((tax.name for tax in taxes.values() if tax.id == tax_id), str(tax_id))
