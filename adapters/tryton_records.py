"""What a raw `account.invoice` create must name by id, looked up in the Tryton database.

Raw RPC `create` runs no on_change, so everything Tryton would fill in is resolved here: the
party by `party_field`, its invoice address (the first one flagged for invoices, else the
first), the receivable account (the party's, else the accounting configuration's default, or
`receivable_account` by code), the revenue journal (`journal` by name or code, else the first
revenue journal), the currency by ISO code, each product by code with its category's revenue
account (or `revenue_account` by code), and the payment term: `payment_terms` maps our terms
code to a Tryton payment term name, else one named like the code or "Net N days" is used,
else none. What Tryton does not have refuses the plan (RejectedError naming it). Accounts,
the journal, currencies and payment terms are cached for the sink's life; parties, addresses
and products are read for each plan.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.tryton_rpc import TrytonRpc
from connector.errors import RejectedError
from connector.model import InvoicePlan


class TrytonRecords:
    """The ids of the records an invoice of one Tryton database refers to."""

    def __init__(
        self,
        name: str,
        rpc: TrytonRpc,
        *,
        party_field: str,
        journal: str | None,
        receivable_account: str | None,
        revenue_account: str | None,
        payment_terms: Mapping[str, str],
    ) -> None:
        self.name = name
        self.rpc = rpc
        self.party_field = party_field
        self.journal_name = journal
        self.receivable_account = receivable_account
        self.revenue_account_code = revenue_account
        self.payment_terms = payment_terms
        self._cache: dict[tuple[str, str], Any] = {}

    def _one(
        self, kind: str, key: str, model: str, domain: list[Any], fields: list[str]
    ) -> dict[str, Any] | None:
        if (kind, key) not in self._cache:
            rows = self.rpc.search_read(model, domain, fields, limit=1)
            self._cache[(kind, key)] = rows[0] if rows else None
        value: dict[str, Any] | None = self._cache[(kind, key)]
        return value

    def party(self, customer_ref: str) -> dict[str, Any]:
        """The one party whose `party_field` is the customer reference."""
        rows = self.rpc.search_read(
            "party.party",
            [(self.party_field, "=", customer_ref)],
            ["name", "addresses", "account_receivable"],
        )
        if not rows:
            raise RejectedError(
                f"{self.name}: Tryton has no party whose {self.party_field} is {customer_ref!r}",
                provider_code="party-not-found",
            )
        if len(rows) > 1:
            raise RejectedError(
                f"{self.name}: {len(rows)} Tryton parties have {self.party_field} {customer_ref!r}",
                provider_code="party-ambiguous",
            )
        return rows[0]

    def address(self, party: dict[str, Any], customer_ref: str) -> int:
        """The party's invoice address: the first flagged for invoices, else its first."""
        addresses = self.rpc.search_read(
            "party.address", [("party", "=", party["id"])], ["invoice", "sequence"]
        )
        if not addresses:
            raise RejectedError(f"{self.name}: Tryton party {customer_ref!r} has no address to invoice")
        flagged = [a for a in addresses if a.get("invoice")]
        return int((flagged or addresses)[0]["id"])

    def receivable(self, party: dict[str, Any]) -> int:
        """The receivable account: `receivable_account`, else the party's, else the default."""
        if self.receivable_account:
            return self._account(self.receivable_account, "receivable_account")
        if party.get("account_receivable"):
            return int(party["account_receivable"])
        configuration = self._one(
            "configuration", "1", "account.configuration", [], ["default_account_receivable"]
        )
        if not configuration or not configuration.get("default_account_receivable"):
            raise RejectedError(
                f"{self.name}: Tryton has no default receivable account; set receivable_account"
            )
        return int(configuration["default_account_receivable"])

    def _account(self, code: str, key: str) -> int:
        row = self._one(
            "account", code, "account.account", [("code", "=", code), ("closed", "!=", True)], ["code"]
        )
        if row is None:
            raise RejectedError(f"{self.name}: {key}: Tryton has no open account with code {code!r}")
        return int(row["id"])

    def journal(self) -> int:
        """The revenue journal: `journal` by name or code, else the first revenue journal."""
        wanted = self.journal_name
        domain: list[Any] = [("type", "=", "revenue")]
        if wanted:
            domain.append(["OR", ("name", "=", wanted), ("code", "=", wanted)])
        row = self._one("journal", wanted or "", "account.journal", domain, ["name"])
        if row is None:
            raise RejectedError(f"{self.name}: Tryton has no revenue journal {wanted or ''}".strip())
        return int(row["id"])

    def currency(self, code: str) -> int:
        """The currency of this ISO code."""
        row = self._one("currency", code, "currency.currency", [("code", "=", code)], ["code"])
        if row is None:
            raise RejectedError(f"{self.name}: Tryton has no currency {code}")
        return int(row["id"])

    def payment_term(self, plan: InvoicePlan) -> int | None:
        """The payment term of the plan's terms, by mapped name, code or "Net N days"; None without one."""
        terms = plan.payment_terms
        if terms is None:
            return None
        names = [self.payment_terms.get(terms.code), terms.code, f"Net {terms.net_days} days"]
        for name in (n for n in names if n):
            row = self._one(
                "payment_term", name, "account.invoice.payment_term", [("name", "=", name)], ["name"]
            )
            if row is not None:
                return int(row["id"])
        if terms.code in self.payment_terms:
            raise RejectedError(
                f"{self.name}: payment_terms[{terms.code!r}]: Tryton has no payment term "
                f"{self.payment_terms[terms.code]!r}"
            )
        return None

    def products(self, plan: InvoicePlan) -> dict[str, dict[str, Any]]:
        """The plan's products by code (SKU), with unit and revenue account."""
        skus = sorted({line.sku for line in plan.lines})
        rows = self.rpc.search_read(
            "product.product",
            [("code", "in", skus)],
            ["code", "name", "default_uom", "template.account_category.account_revenue"],
        )
        products = {row["code"]: row for row in rows}
        missing = [sku for sku in skus if sku not in products]
        if missing:
            raise RejectedError(
                f"{self.name}: Tryton has no product with code {', '.join(repr(s) for s in missing)}",
                provider_code="product-not-found",
            )
        return products

    def revenue_account(self, product: dict[str, Any], sku: str) -> int:
        """The product category's revenue account, else `revenue_account`."""
        category = (product.get("template.") or {}).get("account_category.") or {}
        if category.get("account_revenue"):
            return int(category["account_revenue"])
        if self.revenue_account_code:
            return self._account(self.revenue_account_code, "revenue_account")
        raise RejectedError(
            f"{self.name}: product {sku!r} has no revenue account in Tryton; set revenue_account"
        )
