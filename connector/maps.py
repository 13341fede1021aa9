"""The customer map (buyer identifiers -> vendor customer) and the SKU map (billing SKU -> PO SKUs).

Both are plain TOML files an integration engineer edits::

    # customers.toml
    [[customers]]
    customer_ref = "CUST-ACME"
    name = "Acme Corp"
    buyer_ids = ["acme.example"]

    # skus.toml
    [skus]
    "PLAN-PRO" = ["PLAN-PRO", "CLD-PRO-SEAT"]

A file that cannot be read or has a wrong shape raises `ConfigError` naming the file and key.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.errors import ConfigError
from connector.model import PurchaseOrder


@dataclass(frozen=True)
class Customer:
    """One vendor customer and the buyer identifiers its POs arrive with."""

    customer_ref: str
    name: str = ""
    buyer_ids: tuple[str, ...] = ()


def _normalise(identifier: str) -> str:
    return identifier.strip().casefold()


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: is not valid TOML: {exc}") from exc


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
        for customer in customers:
            self._names[customer.customer_ref] = customer.name
            for buyer_id in customer.buyer_ids:
                known = self._by_buyer.setdefault(_normalise(buyer_id), customer.customer_ref)
                if known != customer.customer_ref:
                    raise ValueError(
                        f"buyer id {buyer_id!r} maps to both {known} and {customer.customer_ref}"
                    )

    @classmethod
    def load(cls, path: Path | None) -> CustomerMap:
        """Read `[[customers]]` tables; no path gives an empty map."""
        if path is None:
            return cls()
        data = _read_toml(path)
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
            extra = sorted(set(entry) - {"customer_ref", "name", "buyer_ids"})
            if extra:
                raise ConfigError(f"{path}: {where}.{extra[0]}: unknown key")
            ref = _text(path, f"{where}.customer_ref", entry.get("customer_ref"))
            name = entry.get("name", "")
            if not isinstance(name, str):
                raise ConfigError(f"{path}: {where}.name: expected a string, got {name!r}")
            buyer_ids = _text_list(path, f"{where}.buyer_ids", entry.get("buyer_ids", []))
            for buyer_id in buyer_ids:
                other = seen.setdefault(_normalise(buyer_id), ref)
                if other != ref:
                    raise ConfigError(f"{path}: {where}.buyer_ids: {buyer_id!r} already maps to {other}")
            customers.append(Customer(customer_ref=ref, name=name.strip(), buyer_ids=buyer_ids))
        return cls(customers)

    def customer_for(self, po: PurchaseOrder) -> str | None:
        """The PO's own customer_ref, else the customer of its buyer id (or its e-mail domain)."""
        if po.customer_ref:
            return po.customer_ref
        buyer_id = _normalise(po.buyer_id)
        if not buyer_id:
            return None
        found = self._by_buyer.get(buyer_id)
        if found is None and "@" in buyer_id:
            found = self._by_buyer.get(buyer_id.rpartition("@")[2])
        return found

    def name_of(self, customer_ref: str) -> str:
        """The customer's display name; empty when the map has none."""
        return self._names.get(customer_ref, "")


class SkuMap:
    """Which PO SKUs (or supplier part ids) a buyer may use for one of our billing SKUs."""

    def __init__(self, mapping: Mapping[str, Iterable[str]] | None = None) -> None:
        self._accepted: dict[str, frozenset[str]] = {
            billing_sku.strip(): frozenset({billing_sku.strip(), *(s.strip() for s in po_skus)})
            for billing_sku, po_skus in (mapping or {}).items()
        }

    @classmethod
    def load(cls, path: Path | None) -> SkuMap:
        """Read the `[skus]` table; no path gives the identity map."""
        if path is None:
            return cls()
        data = _read_toml(path)
        unknown = sorted(set(data) - {"skus"})
        if unknown:
            raise ConfigError(f"{path}: {unknown[0]}: unknown key (expected [skus])")
        table = data.get("skus", {})
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: skus: expected a table, got {table!r}")
        mapping = {
            _text(path, f"skus.{sku}", sku): _text_list(path, f"skus.{sku}", po_skus)
            for sku, po_skus in table.items()
        }
        return cls(mapping)

    def po_skus_for(self, billing_sku: str) -> frozenset[str]:
        """The PO SKUs accepted for `billing_sku`, which always include the SKU itself."""
        sku = billing_sku.strip()
        return self._accepted.get(sku) or frozenset({sku})
