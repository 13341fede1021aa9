"""The `cxml-invoice` sink: a PO-backed cXML InvoiceDetailRequest posted back to the buyer.

This is how a supplier invoices a Coupa (or Ariba-style) buyer over cXML: one
`InvoiceDetailRequest` per plan, POSTed as `text/xml` to the buyer's invoice URL (Coupa:
`https://<instance>.coupahost.com/cxml/invoices`), answered synchronously by a cXML `Response`
whose `Status@code` says what happened (the HTTP status may say it too, or stay 200).

Exactly once: the buyer refuses an invoice number it already holds for this supplier (Coupa
answers 417 "invoice number has already been used for this supplier"). That answer means the
invoice was delivered earlier, so it resolves as `already_existed`, not as a failure. The
payloadID is derived from the idempotency key, so a re-sent document keeps it as cXML asks.

cXML has no call to ask the buyer which invoices it holds, so `find()` reads the local archive:
each document the buyer accepted (or answered as a duplicate) is kept in `archive_dir` under
its invoice number, with the shared secret masked. A document whose outcome was unclear is not
in the archive; re-sending it is safe because the buyer answers the duplicate number.
The buyer reports no invoice id or total, so a RemoteRef carries the document's payloadID, the
DueAmount (gross) and the summary Tax as sent.

Credit notes: a credit note is an InvoiceDetailRequest with `purpose="creditMemo"` under its own
number, naming the invoice it credits in `InvoiceIDInfo` (number and date) and, when the outbox
recorded the invoice's payloadID as its id, in `DocumentReference`. It carries the invoice's PO
lines with their quantities and unit prices positive and every amount negative (cXML: "negative
amounts are credit given back to the buyer"; its DueAmount must be negative). Coupa takes a
credit memo this way, with positive quantities and prices and the original invoice named; it
refuses one without the original invoice. It is archived and found like an invoice, by its
number; its RemoteRef reports the credited gross and tax positive.

Tax: a taxed plan goes out with line-level tax (`InvoiceDetailLineIndicator isTaxInLine="yes"`):
each InvoiceDetailItem has a `Tax` with one `TaxDetail` (category "vat" or "sales", the rate as
percentageRate, TaxableAmount, TaxAmount, the state as TaxLocation for US sales tax, and for
zero-tax categories the exemption reason as Description and its VATEX code as TaxExemption).
Line shares are rounded per line with each breakdown group's remainder on its largest line, so
they sum to the summary `Tax`, which holds one TaxDetail per breakdown group. SubtotalAmount is
net; NetAmount and DueAmount are gross. The `[supplier]` VAT id goes on a remitTo InvoicePartner
as IdReference taxPrefix/taxNumber (Coupa compliant invoicing). A plan without tax goes out as
before, with a zero summary Tax ("No tax"), as the QuickBooks and Xero sinks send it untaxed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Literal

import requests
from pydantic import Field, field_validator, model_validator

from adapters import durable
from adapters.cxml_invoice_answers import (
    ArchivedInvoice,
    is_already_used,
    named_number,
    read_archived,
    read_status,
)
from adapters.cxml_invoice_document import Credentials, payload_id, render_invoice_request
from adapters.ubl_files import invoice_file_name
from connector.errors import (
    AuthenticationError,
    ConfigError,
    ConnectorError,
    InputError,
    RejectedError,
    UncertainError,
)
from connector.http import HttpClient, RetryPolicy
from connector.model import InvoicePlan, Party, RemoteRef, utcnow
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability
from connector.redact import MASK
from connector.secrets import resolve_secret
from connector.values import http_url


class CxmlInvoiceConfig(AdapterConfig):
    """The buyer's invoice URL, both parties' cXML credentials and where sent documents are kept."""

    type: str = "cxml-invoice"
    url: str
    from_domain: str = Field(min_length=1)  # the supplier (us)
    from_identity: str = Field(min_length=1)
    to_domain: str = Field(min_length=1)  # the buyer
    to_identity: str = Field(min_length=1)
    sender_domain: str = Field(min_length=1)
    sender_identity: str = Field(min_length=1)
    shared_secret_env: str | None = None
    shared_secret_file: Path | None = None
    deployment_mode: Literal["production", "test"] = "production"
    archive_dir: Path
    user_agent: str = "po-connector 0.1"
    language: str = "en-US"
    connect_timeout: float = Field(default=5.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    # Invoices posted at once (the core keeps up to this many in flight); 1 posts one at a time.
    concurrency: int = Field(default=4, ge=1, le=32)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return http_url(value, example="https://acme.coupahost.com/cxml/invoices", keep_trailing_slash=True)

    @model_validator(mode="after")
    def _secret_source(self) -> CxmlInvoiceConfig:
        if not self.shared_secret_env and not self.shared_secret_file:
            raise ValueError("set shared_secret_env or shared_secret_file")
        return self


class DuplicateInvoiceAnswer(RejectedError):
    """The buyer already holds this invoice number: the invoice was delivered before.

    `number` is the invoice number the answer names, when it names one.
    """

    number: str | None = None


class CxmlInvoiceSink:
    """Posts each plan (invoice or credit memo) to the buyer as a cXML InvoiceDetailRequest,
    exactly once per number."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP, Capability.CREDIT_NOTES})
    Config: ClassVar[type[AdapterConfig]] = CxmlInvoiceConfig

    def __init__(
        self,
        config: CxmlInvoiceConfig,
        context: AdapterContext,
        *,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self.push_concurrency = config.concurrency
        self._log = context.logger
        # The seller: its VAT id goes on the remitTo partner (Coupa compliant invoicing).
        self.supplier: Party | None = context.supplier
        secret = resolve_secret(
            env=config.shared_secret_env,
            file=config.shared_secret_file,
            key=f"{config.name}.shared_secret",
            base_dir=context.base_dir,
        )
        self.credentials = Credentials(
            from_domain=config.from_domain,
            from_identity=config.from_identity,
            to_domain=config.to_domain,
            to_identity=config.to_identity,
            sender_domain=config.sender_domain,
            sender_identity=config.sender_identity,
            shared_secret=secret,
            user_agent=config.user_agent,
        )
        archive = context.resolve(config.archive_dir)
        try:
            archive.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"sink {config.name!r}: archive_dir {str(archive)!r} cannot be created: {exc}"
            ) from exc
        self.archive_dir = archive
        self.client = HttpClient(
            config.url,
            name=f"cxml-invoice:{config.name}",
            timeout=(config.connect_timeout, config.read_timeout),
            retry=retry,
            headers={"Accept": "text/xml"},
            classify=self._classify,
            session=session,
        )

    def archive_path(self, plan: InvoicePlan) -> Path:
        """Where the accepted document of this plan is kept."""
        return self.archive_dir / invoice_file_name(plan.invoice_number)

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Plans whose invoice the buyer accepted, from the archive of accepted documents."""
        found: dict[str, RemoteRef] = {}
        for plan in plans:
            path = self.archive_path(plan)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            try:
                archived = read_archived(data, document=str(path))
            except InputError as exc:
                # The buyer accepted it (it is archived), so it must not be sent as new again.
                self._log.warning("archived invoice %s is unreadable: %s", path, exc)
                archived = ArchivedInvoice(payload_id(plan), None, None)
            found[plan.idempotency_key] = RemoteRef(
                remote_id=archived.payload_id,
                invoice_number=plan.invoice_number,
                total=archived.total,
                tax=archived.tax,
                already_existed=True,
            )
        return found

    def render(self, plan: InvoicePlan, *, timestamp: datetime | None = None, masked: bool = False) -> bytes:
        """The plan's InvoiceDetailRequest; `masked` replaces the shared secret for the archive."""
        credentials = self.credentials
        if masked:
            credentials = dataclasses.replace(credentials, shared_secret=MASK)
        return render_invoice_request(
            plan,
            credentials,
            timestamp=timestamp or utcnow(),
            deployment_mode=self.config.deployment_mode,
            language=self.config.language,
            seller=self.supplier,
        )

    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Post the invoice; a duplicate-number answer resolves as delivered before."""
        if not plan.invoice_number:
            raise RejectedError(f"plan {plan.idempotency_key} has an empty invoice number")
        if not plan.po_number:
            raise RejectedError(
                f"{self.name}: invoice {plan.invoice_number} has no PO: a cXML invoice to the buyer "
                "answers one of its orders (send invoices of customers with po_required = false "
                "to another sink)",
                provider_code="no_po",
            )
        timestamp = utcnow()
        document = self.render(plan, timestamp=timestamp)
        already = False
        try:
            self.client.request(
                "POST",
                self.config.url,
                data=document,
                headers={"Content-Type": "text/xml; charset=UTF-8"},
                idempotent=False,
            )
        except DuplicateInvoiceAnswer as answer:
            if answer.number is not None and answer.number != plan.invoice_number:
                raise RejectedError(
                    f"{answer.message} (it names invoice {answer.number}, not {plan.invoice_number})",
                    status=answer.status,
                    provider_code=answer.provider_code,
                ) from None
            self._log.info("buyer already holds invoice %s: %s", plan.invoice_number, answer.message)
            already = True
        self._archive(plan, self.render(plan, timestamp=timestamp, masked=True))
        return RemoteRef(
            remote_id=payload_id(plan),
            invoice_number=plan.invoice_number,
            total=plan.total.quantized(),
            tax=plan.tax_total,
            already_existed=already,
        )

    def _classify(self, response: requests.Response) -> ConnectorError | None:
        status = read_status(response.content)
        refused = response.status_code in (401, 403) or (status is not None and status.code in (401, 403))
        if refused:
            # The credentials travel in the document: a person must fix the shared secret, and
            # every invoice would be refused alike, so the run stops instead of killing rows.
            said = status.describe() if status is not None else f"HTTP {response.status_code}"
            return AuthenticationError(f"{self.name}: buyer refused our credentials: {said}")
        if status is None:
            if response.status_code < 300:
                return UncertainError(
                    f"{self.name}: buyer answered {response.status_code} without a readable cXML Status",
                    status=response.status_code,
                )
            return None  # no cXML body: the HTTP status decides
        message = f"{self.name}: buyer answered {status.describe()}"
        code = str(status.code)
        if 200 <= status.code < 300:
            return None
        if is_already_used(status):
            answer = DuplicateInvoiceAnswer(message, status=status.code, provider_code=code)
            answer.number = named_number(status)
            return answer
        if 400 <= status.code < 500:
            return RejectedError(message, status=status.code, provider_code=code)
        return UncertainError(message, status=status.code, provider_code=code)

    def _archive(self, plan: InvoicePlan, document: bytes) -> None:
        path = self.archive_path(plan)
        try:
            # Not fsynced: an archive a crash loses is covered by the buyer's duplicate answer.
            durable.replace(path, document, prefix=f".{path.stem}.", sync=False)
        except OSError as exc:
            # Delivery is what counts; without the archive a later find() misses the invoice
            # and a re-send is answered as a duplicate number, which resolves the same way.
            self._log.error(
                "invoice %s was delivered but not archived at %s: %s", plan.invoice_number, path, exc
            )
