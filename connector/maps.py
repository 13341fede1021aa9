"""The customer map (buyer identifiers -> vendor customer) and the SKU map (billing SKU -> PO SKUs).

Both are plain TOML files an integration engineer edits::

    # customers.toml
    [[customers]]
    customer_ref = "CUST-ACME"
    name = "Acme Corp"
    buyer_ids = ["acme.example"]
    # The customer master, all optional: who the invoice is addressed to and how it is taxed.
    legal_name = "Acme Corporation"
    vat_id = "DE123456789"                  # or tax_registration_id for a non-VAT number
    endpoint_id = "DE123456789"             # electronic address ...
    endpoint_scheme = "9930"                # ... and its Peppol EAS code
    buyer_reference = "AP-4711"
    ap_email = "ap@acme.example"
    address = { lines = ["1 Main St"], city = "Berlin", postal_code = "10115", country = "DE" }
    tax = { category = "AE", rate = "0", exemption_reason_code = "VATEX-EU-AE" }
    # The customer's PO policy, all optional:
    po_required = true                      # false: periods without a PO are invoiced without one
    po_scope = "per_cycle"                  # or "blanket": a PO with no term end covers later cycles
    po_pattern = "45[0-9]{8}"               # the buyer's PO numbers; a period naming another is a mismatch

    # skus.toml
    [skus]
    "PLAN-PRO" = ["PLAN-PRO", "CLD-PRO-SEAT"]
    # Per-SKU tax overrides (e.g. an exempt service)
    [tax."TRAINING"]
    category = "E"
    rate = "0"
    exemption_reason = "Exempt education service"

A file that cannot be read or has a wrong shape raises `ConfigError` naming the file and key.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from connector.errors import ConfigError
from connector.model import Address, Party, PurchaseOrder
from connector.tax import LineTax


class CustomerAddress(BaseModel):
    """The customer's postal address in the master (the PO's bill-to wins where it has one)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lines: tuple[str, ...] = ()
    city: str = ""
    region: str = ""
    postal_code: str = ""
    country: str = ""

    @field_validator("country")
    @classmethod
    def _alpha2(cls, value: str) -> str:
        value = value.strip().upper()
        if value and (len(value) != 2 or not value.isalpha()):
            raise ValueError(f"country must be an ISO 3166-1 alpha-2 code such as DE, got {value!r}")
        return value


class CustomerMaster(BaseModel):
    """What the vendor knows of a customer as a legal entity (name, ids, address, default tax)
    and how the customer uses POs.

    PO policy: `po_required` false invoices a period that no PO takes without a PO reference
    (it is never `missing_po`). `po_scope` says what a PO without a term end covers:
    "per_cycle" (the default) one billing cycle, the first it is invoiced for, so the next cycle
    needs a new PO; "blanket" every cycle until its balance runs out. A PO with a term covers
    the cycles inside its term either way. `po_pattern` is a regular expression the buyer's PO
    numbers match in full; a period naming a PO number that does not is a mismatch.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    legal_name: str = ""
    vat_id: str = ""
    tax_registration_id: str = ""
    legal_registration_id: str = ""
    endpoint_id: str = ""
    endpoint_scheme: str = ""
    buyer_reference: str = ""
    ap_email: str = ""
    address: CustomerAddress | None = None
    tax: LineTax | None = None
    po_required: bool = True
    po_scope: Literal["per_cycle", "blanket"] = "per_cycle"
    po_pattern: str = ""

    @field_validator("po_pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"po_pattern is not a regular expression: {exc}") from None
        return value

    def po_number_follows_pattern(self, number: str) -> bool:
        """True when there is no pattern or `number` matches it in full."""
        return not self.po_pattern or _pattern(self.po_pattern).fullmatch(number.strip()) is not None

    @field_validator("vat_id")
    @classmethod
    def _vat_prefix(cls, value: str) -> str:
        value = value.replace(" ", "").upper()
        if value and not (value[:2].isalpha() and len(value) > 2):
            raise ValueError(f"vat_id must start with its country prefix (e.g. DE123456789), got {value!r}")
        return value

    @field_validator("endpoint_scheme")
    @classmethod
    def _eas_code(cls, value: str) -> str:
        value = value.strip()
        if value and not (len(value) == 4 and value.isdigit()):
            raise ValueError(f"endpoint_scheme must be a 4-digit Peppol EAS code such as 9930, got {value!r}")
        return value


@dataclass(frozen=True)
class Customer:
    """One vendor customer, the buyer identifiers its POs arrive with, and its master data."""

    customer_ref: str
    name: str = ""
    buyer_ids: tuple[str, ...] = ()
    master: CustomerMaster = field(default_factory=CustomerMaster)

    def party(self) -> Party:
        """The customer as the buyer on an invoice (BG-7)."""
        master = self.master
        address = None
        if master.address is not None:
            address = Address(
                name=master.legal_name or self.name,
                lines=master.address.lines,
                city=master.address.city,
                region=master.address.region,
                postal_code=master.address.postal_code,
                country=master.address.country,
                email=master.ap_email,
            )
        return Party(
            legal_name=master.legal_name or self.name or self.customer_ref,
            address=address,
            vat_id=master.vat_id,
            tax_registration_id=master.tax_registration_id,
            legal_registration_id=master.legal_registration_id,
            endpoint_id=master.endpoint_id,
            endpoint_scheme=master.endpoint_scheme,
            buyer_reference=master.buyer_reference,
            contact_email=master.ap_email,
        )


@functools.cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile(text)


_IDENTITY_KEYS = frozenset({"customer_ref", "name", "buyer_ids"})


def _normalise(identifier: str) -> str:
    return identifier.strip().casefold()


# Reads a map file into its TOML tables (`read_toml`, or a reader that keeps parses).
TomlReader = Callable[[Path], dict[str, Any]]


def read_map_bytes(path: Path) -> bytes:
    """The map file's bytes; a ConfigError naming the file when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc


def parse_toml(path: Path, data: bytes) -> dict[str, Any]:
    """The TOML tables of the map file's bytes; a ConfigError naming the file and the fault."""
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML: not UTF-8 at byte {exc.start}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML: {exc}") from exc


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML tables of a map file."""
    return parse_toml(path, read_map_bytes(path))


def _text(path: Path, key: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{path}: {key}: expected a non-empty string, got {value!r}")
    return value.strip()


def _text_list(path: Path, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{path}: {key}: expected a list of strings, got {value!r}")
    return tuple(_text(path, f"{key}[{index}]", item) for index, item in enumerate(value))


class CustomerMap:
    """Finds the vendor customer of a PO from the buyer identifier it carries."""

    def __init__(self, customers: Iterable[Customer] = ()) -> None:
        self._names: dict[str, str] = {}
        self._by_buyer: dict[str, str] = {}
        self._customers: dict[str, Customer] = {}
        # Buyer id as a PO states it -> its customer: POs of one buyer repeat the same id.
        self._of_buyer: dict[str, str | None] = {}
        for customer in customers:
            self._names[customer.customer_ref] = customer.name
            self._customers[customer.customer_ref] = customer
            for buyer_id in customer.buyer_ids:
                known = self._by_buyer.setdefault(_normalise(buyer_id), customer.customer_ref)
                if known != customer.customer_ref:
                    raise ValueError(
                        f"buyer id {buyer_id!r} maps to both {known} and {customer.customer_ref}"
                    )

    @classmethod
    def load(cls, path: Path | None, read: TomlReader = read_toml) -> CustomerMap:
        """Read `[[customers]]` tables (the file's TOML through `read`); no path gives an empty map."""
        if path is None:
            return cls()
        data = read(path)
        unknown = sorted(set(data) - {"customers"})
        if unknown:
            raise ConfigError(f"{path}: {unknown[0]}: unknown key (expected [[customers]])")
        entries = data.get("customers", [])
        if not isinstance(entries, list):
            raise ConfigError(f"{path}: customers: expected [[customers]] tables")
        customers: list[Customer] = []
        seen: dict[str, str] = {}
        for index, entry in enumerate(entries):
            where = f"customers[{index}]"
            if not isinstance(entry, dict):
                raise ConfigError(f"{path}: {where}: expected a table, got {entry!r}")
            master = _master(path, where, {k: v for k, v in entry.items() if k not in _IDENTITY_KEYS})
            ref = _text(path, f"{where}.customer_ref", entry.get("customer_ref"))
            name = entry.get("name", "")
            if not isinstance(name, str):
                raise ConfigError(f"{path}: {where}.name: expected a string, got {name!r}")
            buyer_ids = _text_list(path, f"{where}.buyer_ids", entry.get("buyer_ids", []))
            for buyer_id in buyer_ids:
                other = seen.setdefault(_normalise(buyer_id), ref)
                if other != ref:
                    raise ConfigError(f"{path}: {where}.buyer_ids: {buyer_id!r} already maps to {other}")
            customers.append(
                Customer(customer_ref=ref, name=name.strip(), buyer_ids=buyer_ids, master=master)
            )
        return cls(customers)

    def customer_for(self, po: PurchaseOrder) -> str | None:
        """The PO's own customer_ref, else the customer of its buyer id (or its e-mail domain)."""
        if po.customer_ref:
            return po.customer_ref
        stated = po.buyer_id
        seen = self._of_buyer
        if stated in seen:
            return seen[stated]
        buyer_id = _normalise(stated)
        found = self._by_buyer.get(buyer_id) if buyer_id else None
        if found is None and "@" in buyer_id:
            found = self._by_buyer.get(buyer_id.rpartition("@")[2])
        seen[stated] = found
        return found

    def name_of(self, customer_ref: str) -> str:
        """The customer's display name; empty when the map has none."""
        return self._names.get(customer_ref, "")

    def get(self, customer_ref: str) -> Customer | None:
        """The customer with its master data; None for a customer the map does not know."""
        return self._customers.get(customer_ref)


def _master(path: Path, where: str, fields: dict[str, Any]) -> CustomerMaster:
    """The master part of one [[customers]] entry, an error naming file, entry, key and value."""
    try:
        return CustomerMaster.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function"))
        shown = f" (got {error['input']!r})" if error["type"] != "extra_forbidden" else ""
        reason = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        raise ConfigError(f"{path}: {where}.{key}: {reason}{shown}") from None


class SkuMap:
    """Which PO SKUs (or supplier part ids) a buyer may use for one of our billing SKUs."""

    def __init__(
        self, mapping: Mapping[str, Iterable[str]] | None = None, taxes: Mapping[str, LineTax] | None = None
    ) -> None:
        self._accepted: dict[str, frozenset[str]] = {
            billing_sku.strip(): frozenset({billing_sku.strip(), *(s.strip() for s in po_skus)})
            for billing_sku, po_skus in (mapping or {}).items()
        }
        self._taxes: dict[str, LineTax] = {
            sku.strip(): tax.model_copy(update={"origin": "sku"}) for sku, tax in (taxes or {}).items()
        }

    @classmethod
    def load(cls, path: Path | None) -> SkuMap:
        """Read the `[skus]` table; no path gives the identity map."""
        if path is None:
            return cls()
        data = read_toml(path)
        unknown = sorted(set(data) - {"skus", "tax"})
        if unknown:
            raise ConfigError(f"{path}: {unknown[0]}: unknown key (expected [skus] or [tax.SKU])")
        table = data.get("skus", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: skus: expected a table, got {table!r}")
        mapping = {
            _text(path, f"skus.{sku}", sku): _text_list(path, f"skus.{sku}", po_skus)
            for sku, po_skus in table.items()
        }
        return cls(mapping, _sku_taxes(path, data.get("tax", {})))

    def tax_for(self, billing_sku: str) -> LineTax | None:
        """The SKU's tax override (e.g. an exempt service); None when it has none."""
        return self._taxes.get(billing_sku.strip())

    def knows_po_sku(self, code: str) -> bool:
        """True when a PO line's SKU (or part id) is one of ours or mapped to one; with no map
        (the identity map) every SKU is taken as ours."""
        if not self._accepted:
            return True
        code = code.strip()
        return any(code in accepted for accepted in self._accepted.values())

    def po_skus_for(self, billing_sku: str) -> frozenset[str]:
        """The PO SKUs accepted for `billing_sku`, which always include the SKU itself."""
        sku = billing_sku.strip()
        return self._accepted.get(sku) or frozenset({sku})


def _sku_taxes(path: Path, table: object) -> dict[str, LineTax]:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: tax: expected [tax.SKU] tables, got {table!r}")
    taxes: dict[str, LineTax] = {}
    for sku, fields in table.items():
        where = f"tax.{sku}"
        if not isinstance(fields, dict):
            raise ConfigError(f"{path}: {where}: expected a table, got {fields!r}")
        try:
            taxes[_text(path, where, sku)] = LineTax.model_validate(fields)
        except ValidationError as exc:
            error = exc.errors()[0]
            key = ".".join(str(part) for part in error["loc"])
            raise ConfigError(f"{path}: {where}{'.' + key if key else ''}: {error['msg']}") from None
    return taxes
