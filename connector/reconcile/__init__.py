"""Reconciliation of billing periods against purchase orders: pure functions, no I/O.

Periods are taken in a fixed order (period start, then key), so the outcome never depends on
the order of the inputs. For each period the candidates are the latest revisions of the
customer's POs, or only the PO the period names. A candidate fits when it is open, in the
period's currency, its term covers the period, every billed SKU maps to a PO line at the PO
price with enough quantity left, and its remaining balance covers the period total. One
fitting PO is a match and draws the balance down for later periods; several are ambiguous;
none gives a mismatch with the reasons of the closest candidate, or `missing_po` when the
period lies outside every candidate's term. POs are indexed by customer: O(n + m).

Most periods fit one PO, so the work is split in two. Per PO, plain facts and its lines by
SKU are taken once; per customer, which open POs carry each SKU. A period first asks only the
open candidates in its currency that have a line for every billed SKU whether they fit, with
no reason written. Only when none fits is every candidate looked at for what needs no numbers
(status, term, cycle, currency), and closely (lines, balance) only the ones that can still be
the closest; a reason's detail is written only if that reason is reported.

The package: `indexes` (PO facts and per-customer candidates), `fitting` (the fast verdict),
`explanations` (every reason, when nothing fits), `balances` (the ledger), `tolerances`,
`renewal` (warnings), `engine` (one decision per period), `outcome` (what it returns) — all
pure — and `service`, which loads the state, runs the engine and records and plans the results.
"""

from connector.reconcile.engine import reconcile
from connector.reconcile.outcome import Allocation, PriorInvoice, ReconcileOutcome
from connector.reconcile.renewal import CONSUMED, TERM_END, renewal_reason, renewal_warnings
from connector.reconcile.tolerances import CurrencyTolerances, ReconcileSettings, Tolerance

__all__ = [
    "CONSUMED",
    "TERM_END",
    "Allocation",
    "CurrencyTolerances",
    "PriorInvoice",
    "ReconcileOutcome",
    "ReconcileSettings",
    "Tolerance",
    "reconcile",
    "renewal_reason",
    "renewal_warnings",
]
