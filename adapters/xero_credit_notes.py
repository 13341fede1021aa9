"""Credit notes in the `xero` sink: an ACCRECCREDIT credit note, allocated to the invoice it credits.

A credit note is two writes. `PUT /CreditNotes` creates it AUTHORISED (only an authorised credit
note can be allocated) under our number, which Xero keeps unique ("Credit Note # must be
unique."); `PUT /CreditNotes/{CreditNoteID}/Allocations` then sets its remaining credit against
the credited invoice, whose amount due drops by as much. Each call carries an `Idempotency-Key`
made from the plan and the body, so an immediate re-send is replayed.

The credit note counts as in Xero only once it is allocated (or has no credit left): `find` does
not report one that was created but not allocated, so the pusher sends the plan again, and the
push finishes it: the create is replayed or answered "must be unique", the lookup finds the
credit note, and only the allocation is made. No second credit note is ever created.

The lookup is `GET /CreditNotes?where=Type=="ACCRECCREDIT" AND (CreditNoteNumber=="…" OR …)`:
the endpoint has no optimised number filter as `InvoiceNumbers` is for invoices.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapters.xero_answers import correlation_of, elements_of, put_batch
from adapters.xero_config import XeroConfig
from adapters.xero_payload import (
    CREDIT_NOTE_TYPE,
    PayloadProblem,
    allocated_to,
    allocation_payload,
    credit_note_payload,
    credit_note_where,
    dumps_exact,
    element_tax,
    element_total,
    is_duplicate_number,
    is_error_element,
    remaining_credit,
    request_key,
    validation_messages,
)
from connector.errors import RejectedError, RemoteError, UncertainError
from connector.http import HttpClient
from connector.model import InvoicePlan, RemoteRef
from connector.ports import PushOutcome

PAGE_SIZE = 100  # GET /CreditNotes?page=N answers up to 100 credit notes
LOOKUP_CHUNK = 25  # numbers per where filter, keeps the URL short
FINISHED = ("VOIDED", "DELETED")  # a person ended it: nothing is left to allocate
Created = tuple[InvoicePlan, dict[str, Any], str, bool]  # plan, element, correlation id, existed


class XeroCreditNotes:
    """The credit-note side of one Xero sink: lookup, create and allocate, each exactly once."""

    def __init__(
        self,
        *,
        name: str,
        client: HttpClient,
        config: XeroConfig,
        log: logging.Logger,
        invoice_ids: Callable[[Sequence[str]], dict[str, str]],
    ) -> None:
        self.name = name
        self.client = client
        self.config = config
        self.mapping = config.invoice_mapping()
        self._log = log
        self._invoice_ids = invoice_ids  # our invoice number (casefolded) -> InvoiceID

    # -- lookup -------------------------------------------------------------------------
    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Credit notes already in Xero and settled (allocated, or nothing left to allocate)."""
        found: dict[str, RemoteRef] = {}
        for key, (plan, element, correlation) in self._numbered(plans).items():
            if self._settled(plan, element, invoice_id=plan.credits.remote_id if plan.credits else ""):
                found[key] = self._ref(plan, element, correlation, existed=True)
        return found

    def _numbered(self, plans: Sequence[InvoicePlan]) -> dict[str, tuple[InvoicePlan, dict[str, Any], str]]:
        """The ACCRECCREDIT credit note holding each plan's number, allocated or not."""
        by_number: dict[str, list[InvoicePlan]] = {}
        for plan in plans:
            by_number.setdefault(plan.invoice_number.casefold(), []).append(plan)
        numbers = list(dict.fromkeys(plan.invoice_number for plan in plans if '"' not in plan.invoice_number))
        found: dict[str, tuple[InvoicePlan, dict[str, Any], str]] = {}
        for start in range(0, len(numbers), LOOKUP_CHUNK):
            where = credit_note_where(numbers[start : start + LOOKUP_CHUNK])
            page = 1
            while True:
                response = self.client.request(
                    "GET", "CreditNotes", params={"where": where, "page": str(page)}
                )
                elements = elements_of(response, "CreditNotes", name=self.name, written=False)
                for element in elements:
                    if element.get("Type") != CREDIT_NOTE_TYPE:
                        continue
                    if element.get("Status") not in self.config.lookup_statuses:
                        continue
                    for plan in by_number.get(str(element.get("CreditNoteNumber", "")).casefold(), []):
                        found[plan.idempotency_key] = (plan, element, correlation_of(response))
                if len(elements) < PAGE_SIZE:
                    break
                page += 1
        return found

    def _settled(self, plan: InvoicePlan, element: Mapping[str, Any], *, invoice_id: str) -> bool:
        if element.get("Status") in FINISHED:
            return True
        left = remaining_credit(element)
        if left is not None and not left.amount:
            return True
        credited = plan.credits.invoice_number if plan.credits else ""
        return allocated_to(element, invoice_id, credited)

    # -- push ---------------------------------------------------------------------------
    def push(self, plans: Sequence[InvoicePlan]) -> dict[str, PushOutcome]:
        """Create and allocate these credit notes; one outcome per plan, by idempotency key."""
        outcomes: dict[str, PushOutcome] = {}
        plans = list({plan.idempotency_key: plan for plan in plans}.values())
        numbers: dict[str, str] = {}
        for plan in plans:
            other = numbers.setdefault(plan.invoice_number.casefold(), plan.idempotency_key)
            if other != plan.idempotency_key:
                why = f"its number is also used by plan {other} in this batch"
                outcomes[plan.idempotency_key] = self._rejected(plan, why)
        invoice_ids = self._credited_ids([p for p in plans if p.idempotency_key not in outcomes], outcomes)
        ready: list[tuple[InvoicePlan, dict[str, Any]]] = []
        for plan in plans:
            if plan.idempotency_key in outcomes:
                continue
            try:
                ready.append((plan, credit_note_payload(plan, self.mapping)))
            except PayloadProblem as exc:
                reason = f"{exc.code}: {exc}" if exc.code else str(exc)
                outcomes[plan.idempotency_key] = self._rejected(plan, reason, provider_code=exc.code)
        created: list[Created] = []
        size = self.config.batch_size
        for start in range(0, len(ready), size):
            created.extend(self._put(ready[start : start + size], outcomes))
        for plan, element, correlation, existed in created:
            invoice_id = invoice_ids[plan.idempotency_key]
            outcomes[plan.idempotency_key] = self._allocate(plan, invoice_id, element, correlation, existed)
        return outcomes

    def _credited_ids(self, plans: Sequence[InvoicePlan], outcomes: dict[str, PushOutcome]) -> dict[str, str]:
        """The InvoiceID each credit note is allocated to: the one recorded when the invoice was
        pushed, else the invoice's own, looked up by its number before anything is written."""
        ids = {p.idempotency_key: p.credits.remote_id for p in plans if p.credits and p.credits.remote_id}
        missing = [p for p in plans if p.credits and p.idempotency_key not in ids]
        if not missing:
            return ids
        try:
            by_number = self._invoice_ids([p.credits.invoice_number for p in missing if p.credits])
        except RemoteError as exc:
            outcomes.update({p.idempotency_key: PushOutcome(p.idempotency_key, error=exc) for p in missing})
            return ids
        for plan in missing:
            assert plan.credits is not None
            invoice_id = by_number.get(plan.credits.invoice_number.casefold())
            if invoice_id:
                ids[plan.idempotency_key] = invoice_id
            else:
                why = f"the credited invoice {plan.credits.invoice_number} is not in this Xero organisation"
                outcomes[plan.idempotency_key] = self._rejected(plan, why)
        return ids

    def _put(
        self, chunk: Sequence[tuple[InvoicePlan, dict[str, Any]]], outcomes: dict[str, PushOutcome]
    ) -> list[Created]:
        """Create one chunk; the created ones (and those found behind a taken number) are returned
        for allocation, every other plan gets its outcome in `outcomes`."""
        plans = [plan for plan, _ in chunk]
        try:
            response, elements = put_batch(self.client, "CreditNotes", chunk, name=self.name)
        except RemoteError as exc:
            outcomes.update({p.idempotency_key: PushOutcome(p.idempotency_key, error=exc) for p in plans})
            return []
        correlation = correlation_of(response)
        if len(elements) != len(plans):
            error = UncertainError(
                f"{self.name}: Xero answered {len(elements)} credit notes for {len(plans)} sent",
                status=response.status_code,
                correlation_id=correlation,
            )
            outcomes.update({p.idempotency_key: PushOutcome(p.idempotency_key, error=error) for p in plans})
            return []
        created: list[Created] = []
        taken: list[InvoicePlan] = []
        for plan, element in zip(plans, elements, strict=True):
            number = str(element.get("CreditNoteNumber", ""))
            if number.casefold() != plan.invoice_number.casefold():
                outcomes[plan.idempotency_key] = PushOutcome(
                    plan.idempotency_key,
                    error=UncertainError(
                        f"{self.name}: Xero answered credit note {number!r} in the place of "
                        f"{plan.invoice_number!r}",
                        correlation_id=correlation,
                    ),
                )
            elif not is_error_element(element):
                created.append((plan, element, correlation, False))
            elif is_duplicate_number(messages := validation_messages(element)):
                taken.append(plan)
            else:
                outcomes[plan.idempotency_key] = self._rejected(
                    plan,
                    "; ".join(messages) or "Xero refused it without a message",
                    status=400,
                    provider_code="ValidationException",
                    correlation_id=correlation,
                )
        return created + self._existing(taken, outcomes)

    def _existing(self, plans: Sequence[InvoicePlan], outcomes: dict[str, PushOutcome]) -> list[Created]:
        """Credit notes whose number Xero says is taken: the one holding it is finished, not re-made."""
        if not plans:
            return []
        try:
            found = self._numbered(plans)
        except RemoteError as exc:
            found, reason = {}, f"its number is taken in Xero but the lookup failed: {exc.message}"
        else:
            reason = "its number is taken in Xero but no ACCRECCREDIT credit note with it was found"
        existing: list[Created] = []
        for plan in plans:
            if plan.idempotency_key in found:
                _, element, correlation = found[plan.idempotency_key]
                existing.append((plan, element, correlation, True))
            else:
                error = UncertainError(f"{self.name}: credit note {plan.invoice_number}: {reason}")
                outcomes[plan.idempotency_key] = PushOutcome(plan.idempotency_key, error=error)
        return existing

    def _allocate(
        self, plan: InvoicePlan, invoice_id: str, element: dict[str, Any], correlation: str, existed: bool
    ) -> PushOutcome:
        """Set the credit note's remaining credit against the credited invoice, unless it is settled."""
        key = plan.idempotency_key
        try:
            ref = self._ref(plan, element, correlation, existed=existed)
        except UncertainError as exc:
            return PushOutcome(key, error=exc)
        if self._settled(plan, element, invoice_id=invoice_id):
            return PushOutcome(key, ref=ref)
        left = remaining_credit(element) or element_total(element)
        if left is None:
            error = UncertainError(
                f"{self.name}: Xero answered credit note {plan.invoice_number} without a total"
            )
            return PushOutcome(key, error=error)
        body = dumps_exact(allocation_payload(left.amount, invoice_id, plan.issue_date))
        try:
            response = self.client.request(
                "PUT",
                f"CreditNotes/{ref.remote_id}/Allocations",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "Idempotency-Key": request_key([key, "allocation"], body),
                },
                idempotent=False,
            )
            allocations = elements_of(response, "Allocations", name=self.name, written=True)
        except RejectedError as exc:
            assert plan.credits is not None
            why = (
                f"it is in Xero (CreditNoteID {ref.remote_id}) but could not be allocated to invoice "
                f"{plan.credits.invoice_number} ({invoice_id}): {exc.message}"
            )
            return self._rejected(
                plan,
                why,
                status=exc.status,
                provider_code=exc.provider_code,
                correlation_id=exc.correlation_id,
            )
        except RemoteError as exc:
            return PushOutcome(key, error=exc)
        if not allocated_to({"Allocations": allocations}, invoice_id, ""):
            error = UncertainError(
                f"{self.name}: Xero's answer to allocating credit note {plan.invoice_number} shows no "
                f"allocation to invoice {invoice_id}",
                correlation_id=correlation_of(response),
            )
            return PushOutcome(key, error=error)
        self._log.info(
            "%s: Xero credit note %s (%s) allocated %s to invoice %s",
            self.name,
            plan.invoice_number,
            ref.remote_id,
            left,
            invoice_id,
        )
        return PushOutcome(key, ref=ref)

    # -- answers ------------------------------------------------------------------------
    def _ref(
        self, plan: InvoicePlan, element: Mapping[str, Any], correlation: str, *, existed: bool
    ) -> RemoteRef:
        credit_note_id = element.get("CreditNoteID")
        if not isinstance(credit_note_id, str) or not credit_note_id:
            raise UncertainError(
                f"{self.name}: Xero answered credit note {plan.invoice_number} without a CreditNoteID",
                correlation_id=correlation,
            )
        return RemoteRef(
            remote_id=credit_note_id,
            invoice_number=str(element.get("CreditNoteNumber", plan.invoice_number)),
            total=element_total(element),
            tax=element_tax(element),
            correlation_id=correlation,
            already_existed=existed,
        )

    def _rejected(self, plan: InvoicePlan, why: str, **details: Any) -> PushOutcome:
        error = RejectedError(f"{self.name}: credit note {plan.invoice_number}: {why}", **details)
        return PushOutcome(plan.idempotency_key, error=error)
