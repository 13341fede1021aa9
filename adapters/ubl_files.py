"""The `ubl-files` invoice sink: one Peppol BIS Billing 3.0 UBL Invoice file per invoice in a directory.

The seller printed on the invoices is the `[supplier]` section (the context's supplier); the
sink's own `supplier_*` settings are the fallback for configs written before that section
existed. With `rules_dir` set (or PO_CONNECTOR_EINVOICE_RULES), every document is run through
the EN 16931 and Peppol rules before it is written: a fatal rule failure rejects the invoice
(the row goes dead with the rule ids and texts) and nothing is written; warnings are logged.

A file is published under its final name with a hard link from a fully written, fsynced
temporary file, so readers never see a torn invoice and a second pusher of the same plan (another
thread, another process, a retry after a crash) finds the first one's file instead of replacing it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import Field, field_validator

from adapters.durable import parse_file_mode, publish_new, sync_directory
from adapters.einvoice_rules import EinvoiceRules, RulesUnavailable, fatal
from adapters.ubl import NotAnEinvoice, read_totals, render_invoice
from connector.errors import (
    ConfigError,
    InputError,
    RejectedError,
    RemoteError,
    RetryableError,
    UncertainError,
)
from connector.model import Address, InvoicePlan, Party, RemoteRef
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability, PushOutcome

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 120
_TEMP_SUFFIX = ".tmp"
RULES_ENV = "PO_CONNECTOR_EINVOICE_RULES"


def _rules_dir_from_env() -> Path | None:
    value = os.environ.get(RULES_ENV, "").strip()
    return Path(value) if value else None


class UblFilesConfig(AdapterConfig):
    """Where the invoice files go, which rules they must pass, and the fallback supplier."""

    type: str = "ubl-files"
    directory: Path
    # The folder with EN16931-UBL-validation.xslt and PEPPOL-EN16931-UBL.xslt; unset: no validation.
    rules_dir: Path | None = Field(default_factory=_rules_dir_from_env)
    supplier_name: str = "Supplier"
    supplier_id: str = ""
    supplier_street: str = ""
    supplier_city: str = ""
    supplier_postal_code: str = ""
    supplier_country: str = ""
    supplier_email: str = ""
    # Mode of the invoice files written: "0640" (the group may read) or "0644", or 0o640 in TOML.
    file_mode: str | int = "0640"

    @field_validator("file_mode")
    @classmethod
    def _file_mode(cls, value: str | int) -> str | int:
        parse_file_mode(value)
        return value

    @field_validator("supplier_country")
    @classmethod
    def _alpha2(cls, value: str) -> str:
        value = value.strip().upper()
        if value and not re.fullmatch(r"[A-Z]{2}", value):
            raise ValueError(f"must be an ISO 3166-1 alpha-2 code such as DE, got {value!r}")
        return value


def invoice_file_name(invoice_number: str) -> str:
    """The file name of an invoice: its number when that is already safe, else a safe form.

    A number that needs changing gets a short hash of the original appended, so two numbers
    that sanitize alike (``A/1`` and ``A:1``) never share a file; a leading dot is replaced so
    an invoice is never a hidden file.
    """
    safe = _UNSAFE.sub("_", invoice_number)
    if safe.startswith("."):
        safe = "_" + safe[1:]
    if safe == invoice_number and 0 < len(safe) <= _MAX_STEM:
        return f"{safe}.xml"
    digest = hashlib.sha256(invoice_number.encode("utf-8")).hexdigest()[:12]
    return f"{safe[:_MAX_STEM]}-{digest}.xml"


class UblFilesSink:
    """Writes each invoice plan as `{invoice_number}.xml`, exactly once, in one directory."""

    kind: ClassVar[AdapterKind] = AdapterKind.SINK
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {Capability.LOOKUP, Capability.CREDIT_NOTES, Capability.BATCH_PUSH}
    )
    Config: ClassVar[type[AdapterConfig]] = UblFilesConfig

    def __init__(self, config: UblFilesConfig, context: AdapterContext) -> None:
        self.name = config.name
        self._log = context.logger
        directory = context.resolve(config.directory)
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"sink {config.name!r}: directory {str(directory)!r} cannot be created: {exc}"
            ) from exc
        self.directory = directory
        self.file_mode = parse_file_mode(config.file_mode)
        self.supplier = context.supplier or fallback_supplier(config)
        self.rules_dir = context.resolve(config.rules_dir) if config.rules_dir is not None else None
        self._rules: EinvoiceRules | None = None

    def check_ready(self) -> None:
        """Compile the rules now (ConfigError naming `rules_dir` if they cannot be), or say they are off."""
        if self.rules_dir is None:
            self._log.warning(
                "sink %s: e-invoice validation is off (set rules_dir or %s)", self.name, RULES_ENV
            )
            return
        self._loaded_rules(self.rules_dir)
        # Every invoice would break PEPPOL-EN16931-R020 and go dead: a setup error, said once.
        if not self.supplier.endpoint_id:
            raise ConfigError(
                f"sink {self.name!r}: the seller has no electronic address, which every Peppol invoice "
                "needs (R020): set endpoint_id and endpoint_scheme in [supplier]"
            )

    def check(self) -> None:
        """What `doctor` runs: the same as check_ready."""
        self.check_ready()

    @property
    def validates(self) -> bool:
        """True when documents are run through the EN 16931 and Peppol rules before writing."""
        return self.rules_dir is not None

    def _loaded_rules(self, directory: Path) -> EinvoiceRules:
        if self._rules is None:
            try:
                self._rules = EinvoiceRules.load(directory)
            except RulesUnavailable as exc:
                raise ConfigError(
                    f"sink {self.name!r}: rules_dir {str(directory)!r} cannot be used: {exc}"
                ) from exc
        return self._rules

    def _validate(self, plan: InvoicePlan, document: bytes) -> None:
        """Reject the document when a rule fails fatally; log the warnings."""
        if self.rules_dir is None:
            return
        try:
            failures = self._loaded_rules(self.rules_dir).check(document)
        except ValueError as exc:
            raise RejectedError(f"invoice {plan.invoice_number!r} cannot be validated: {exc}") from exc
        for warning in (failure for failure in failures if not failure.fatal):
            self._log.warning("invoice %s: rule warning %s", plan.invoice_number, warning)
        errors = fatal(failures)
        if errors:
            shown = "; ".join(str(failure) for failure in errors)
            raise RejectedError(
                f"invoice {plan.invoice_number!r} breaks the EN 16931 / Peppol rules: {shown}",
                provider_code=" ".join(dict.fromkeys(failure.rule_id for failure in errors)),
            )

    def path_of(self, plan: InvoicePlan) -> Path:
        """Where the invoice file of this plan lives."""
        return self.directory / invoice_file_name(plan.invoice_number)

    def find(self, plans: Sequence[InvoicePlan]) -> dict[str, RemoteRef]:
        """Invoice files already written for these plans, keyed by idempotency key."""
        found: dict[str, RemoteRef] = {}
        for plan in plans:
            path = self.path_of(plan)
            if path.is_file():
                found[plan.idempotency_key] = self._existing(plan, path)
        return found

    def push(self, plan: InvoicePlan) -> RemoteRef:
        """Write the invoice file unless it exists; never overwrite, never leave a torn file."""
        ref, created = self._write(plan)
        if created:
            try:
                self._sync_directory()
            except OSError as exc:
                raise self._unsynced(plan, exc) from exc
        return ref

    def push_batch(self, plans: Sequence[InvoicePlan]) -> list[PushOutcome]:
        """`push` for each plan, the directory synced once for every file the batch wrote."""
        outcomes: list[PushOutcome] = []
        written: list[int] = []
        for plan in plans:
            try:
                ref, created = self._write(plan)
            except RemoteError as exc:
                outcomes.append(PushOutcome(idempotency_key=plan.idempotency_key, error=exc))
                continue
            if created:
                written.append(len(outcomes))
            outcomes.append(PushOutcome(idempotency_key=plan.idempotency_key, ref=ref))
        if written:
            try:
                self._sync_directory()
            except OSError as exc:
                for index in written:
                    outcomes[index] = PushOutcome(
                        idempotency_key=plans[index].idempotency_key, error=self._unsynced(plans[index], exc)
                    )
        return outcomes

    def _write(self, plan: InvoicePlan) -> tuple[RemoteRef, bool]:
        """The invoice file's reference, written (True) unless it was there (False); the file
        itself is durable, its directory entry only once the directory is synced."""
        if not plan.invoice_number:
            raise RejectedError(f"plan {plan.idempotency_key} has an empty invoice number")
        final = self.path_of(plan)
        if final.is_file():
            return self._existing(plan, final), False
        try:
            document = render_invoice(plan, self.supplier)
        except NotAnEinvoice as exc:
            raise RejectedError(
                f"invoice {plan.invoice_number!r} cannot be an e-invoice: {exc}", provider_code=exc.code
            ) from exc
        except ValueError as exc:
            raise RejectedError(f"invoice {plan.invoice_number!r} cannot be written as UBL: {exc}") from exc
        self._validate(plan, document)
        try:
            created = publish_new(final, document, prefix=f".{final.stem}.", mode=self.file_mode)
        except OSError as exc:
            raise RetryableError(f"cannot write invoice file {str(final)!r}: {exc}") from exc
        if not created:
            return self._existing(plan, final), False
        ref = RemoteRef(
            remote_id=final.name,
            invoice_number=plan.invoice_number,
            total=plan.total,
            tax=plan.tax_total,
        )
        return ref, True

    def _unsynced(self, plan: InvoicePlan, exc: OSError) -> UncertainError:
        return UncertainError(
            f"invoice file {str(self.path_of(plan))!r} was linked but the directory sync failed: {exc}"
        )

    def _sync_directory(self) -> None:
        sync_directory(self.directory)

    def _existing(self, plan: InvoicePlan, path: Path) -> RemoteRef:
        """The reference of an invoice file already there, with the total and tax it states."""
        total = tax = None
        try:
            totals = read_totals(path.read_bytes(), document=str(path))
            total, tax = totals.total, totals.tax
        except OSError as exc:
            raise RetryableError(f"cannot read invoice file {str(path)!r}: {exc}") from exc
        except InputError as exc:
            # The file is there under our number, so the invoice must not be written again;
            # its unreadable total is left for a person to look at.
            self._log.warning("existing invoice file %s has no readable total: %s", path, exc)
        return RemoteRef(
            remote_id=path.name,
            invoice_number=plan.invoice_number,
            total=total,
            tax=tax,
            already_existed=True,
        )


def fallback_supplier(config: UblFilesConfig) -> Party:
    """The seller from the sink's own `supplier_*` settings, when there is no `[supplier]` section."""
    street = (config.supplier_street,) if config.supplier_street else ()
    return Party(
        legal_name=config.supplier_name,
        address=Address(
            name=config.supplier_name,
            lines=street,
            city=config.supplier_city,
            postal_code=config.supplier_postal_code,
            country=config.supplier_country,
            email=config.supplier_email,
        ),
        legal_registration_id=config.supplier_id,
        contact_email=config.supplier_email,
    )
