"""The `ubl-files` invoice sink: one UBL 2.1 Invoice XML file per invoice in a directory.

A file is published under its final name with a hard link from a fully written, fsynced
temporary file, so readers never see a torn invoice and a second pusher of the same plan (another
thread, another process, a retry after a crash) finds the first one's file instead of replacing it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pydantic import field_validator

from adapters.durable import publish_new, sync_directory
from adapters.ubl import SupplierParty, read_total, render_invoice
from connector.errors import (
    ConfigError,
    InputError,
    RejectedError,
    RetryableError,
    UncertainError,
)
from connector.model import InvoicePlan, RemoteRef
from connector.ports import AdapterConfig, AdapterContext, AdapterKind, Capability

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
_MAX_STEM = 120
_TEMP_SUFFIX = ".tmp"


class UblFilesConfig(AdapterConfig):
    """Where the invoice files go and who the supplier printed on them is."""

    type: str = "ubl-files"
    directory: Path
    supplier_name: str = "Supplier"
    supplier_id: str = ""
    supplier_street: str = ""
    supplier_city: str = ""
    supplier_postal_code: str = ""
    supplier_country: str = ""
    supplier_email: str = ""

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
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.LOOKUP})
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
        self.supplier = SupplierParty(
            name=config.supplier_name,
            company_id=config.supplier_id,
            street=config.supplier_street,
            city=config.supplier_city,
            postal_code=config.supplier_postal_code,
            country=config.supplier_country,
            email=config.supplier_email,
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
        if not plan.invoice_number:
            raise RejectedError(f"plan {plan.idempotency_key} has an empty invoice number")
        final = self.path_of(plan)
        if final.is_file():
            return self._existing(plan, final)
        try:
            document = render_invoice(plan, self.supplier)
        except ValueError as exc:
            raise RejectedError(f"invoice {plan.invoice_number!r} cannot be written as UBL: {exc}") from exc
        try:
            created = publish_new(final, document, prefix=f".{final.stem}.")
        except OSError as exc:
            raise RetryableError(f"cannot write invoice file {str(final)!r}: {exc}") from exc
        if not created:
            return self._existing(plan, final)
        try:
            self._sync_directory()
        except OSError as exc:
            raise UncertainError(
                f"invoice file {str(final)!r} was linked but the directory sync failed: {exc}"
            ) from exc
        return RemoteRef(
            remote_id=final.name,
            invoice_number=plan.invoice_number,
            total=plan.total,
        )

    def _sync_directory(self) -> None:
        sync_directory(self.directory)

    def _existing(self, plan: InvoicePlan, path: Path) -> RemoteRef:
        """The reference of an invoice file already there, with the total it states."""
        try:
            total = read_total(path.read_bytes(), document=str(path))
        except OSError as exc:
            raise RetryableError(f"cannot read invoice file {str(path)!r}: {exc}") from exc
        except InputError as exc:
            # The file is there under our number, so the invoice must not be written again;
            # its unreadable total is left for a person to look at.
            self._log.warning("existing invoice file %s has no readable total: %s", path, exc)
            total = None
        return RemoteRef(
            remote_id=path.name,
            invoice_number=plan.invoice_number,
            total=total,
            already_existed=True,
        )
