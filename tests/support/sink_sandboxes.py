"""API sink sandboxes wired to a po-connector config, for end-to-end runs and benchmarks.

A `SinkHarness` starts one loopback sandbox (QuickBooks, Xero, NetSuite or a cXML buyer) that
knows the bundled example's customers, and gives the `[[sinks]]` block that points the sink at
it, with the secrets in environment variables or files, never in the config. `example_config`
writes a config with that sink plus the example's sources, billing and maps. `FAULT_MIX` is the
mix of transport and HTTP failures the fault tests inject on the sink's write endpoints.
"""

from __future__ import annotations

import collections
import json
import tomllib
import uuid
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Engine

from connector.config import ENV_PREFIX
from connector.redact import is_sensitive_key
from state import outbox_queries
from state.db import make_engine
from tests.sandboxes.base import Fault, Request, Sandbox
from tests.sandboxes.cxml_buyer import INVOICE_PATH, CxmlBuyerSandbox
from tests.sandboxes.netsuite import PREFIX, NetSuiteSandbox
from tests.sandboxes.quickbooks import TOKEN_PATH, QuickBooksSandbox
from tests.sandboxes.xero import API, UK_TAX_RATES, XeroSandbox
from tests.support.cli import copy_example, untax_example
from tests.support.shared import SHARED_FIXTURES

SINK_NAME = "books"
TENANT = "default"

# The example's customers (examples/customers.toml) and the PO numbers their buyers send.
EXAMPLE_CUSTOMERS: dict[str, str] = {
    "CUST-ACME": "Acme Corp",
    "CUST-GLOBEX": "Globex GmbH",
    "CUST-INITECH": "Initech LLC",
    "CUST-UMBRELLA": "Umbrella Health",
    "CUST-HOOLI": "Hooli Inc",
    "CUST-WAYNE": "Wayne Enterprises Ltd",  # matched only in the taxed example (UK VAT)
}
EXAMPLE_POS: dict[str, tuple[str, ...]] = {
    "CUST-ACME": ("ACME-PO-1001", "ACME-PO-1002", "ACME-PO-1003"),
    "CUST-GLOBEX": ("4500012345", "4500012399"),
    "CUST-INITECH": ("INI-7781",),
    "CUST-UMBRELLA": ("UMB-2026-044",),
    "CUST-HOOLI": (),
    "CUST-WAYNE": ("WE-PO-0077",),
}
EXAMPLE_SKUS = ("PLAN-PRO", "CLD-PRO-SEAT", "PLAN-ENT", "CLD-ENT-ANNUAL", "ADDON-SSO", "TRAINING")
EXAMPLE_MATCHED = 4  # matched billing periods in the bundled example

# Client timeouts are short so an injected timeout costs little; the sandbox stalls longer.
READ_TIMEOUT = 2.0  # generous: a loaded CI machine must not turn a slow answer into a fault
STALL = 3.0
FAULT_MIX: tuple[Fault, ...] = (
    Fault(kind="status", status=500, when="before"),
    Fault(kind="status", status=503, when="after"),
    Fault(kind="status", status=502, when="after"),
    Fault(kind="timeout", when="before", delay=STALL),
    Fault(kind="timeout", when="after", delay=STALL),
    Fault(kind="reset", when="before"),
    Fault(kind="reset", when="after"),
    Fault(kind="truncate", when="after"),
    Fault(kind="status", status=429, when="before", headers={"Retry-After": "0"}),
)


@dataclass(frozen=True)
class StoredInvoice:
    """One invoice as the remote system holds it."""

    number: str
    total: Decimal | None
    currency: str | None


class SinkHarness(ABC):
    """One sandbox and the sink block that targets it."""

    kind: ClassVar[str]
    # Whether the provider gives every answer a correlation id that reaches dead letters.
    correlates: ClassVar[bool] = False
    # Text of the provider's message when a customer is unknown to it.
    rejection_text: ClassVar[str]
    # For the taxed example: what the sandbox's company is set up with, and the sink's tax keys
    # mapping the example's treatments (US sales tax by state, UK VAT 20%, EU reverse charge).
    TAX_SANDBOX: ClassVar[Mapping[str, Any]] = {}
    TAX_SINK: ClassVar[Mapping[str, Any]] = {}
    sandbox: Sandbox

    def __init__(self, hidden_customers: Iterable[str] = ()) -> None:
        self.hidden = set(hidden_customers)

    @abstractmethod
    def sink_block(self, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
        """The `[[sinks]]` block and the environment its secrets come from (files go in workdir)."""

    @abstractmethod
    def is_write(self, request: Request) -> bool:
        """True for a request that may create an invoice."""

    @abstractmethod
    def stored(self) -> list[StoredInvoice]:
        """Every invoice the sandbox holds, duplicates included."""

    @abstractmethod
    def reveal_customer(self, customer_ref: str) -> None:
        """Make a hidden customer known to the remote system (the fix for a rejected plan)."""

    def api_calls(self) -> int:
        """Requests to the provider's API, not counting token refreshes."""
        return self.sandbox.count()

    def start(self) -> SinkHarness:
        self.sandbox.start()
        # The sandbox writes headers and body separately; with Nagle's algorithm on, every
        # answer with a body waits out the client's delayed ACK (about 40 ms on Linux).
        server = self.sandbox._server
        assert server is not None
        server.RequestHandlerClass.disable_nagle_algorithm = True  # type: ignore[attr-defined]
        return self

    def stop(self) -> None:
        self.sandbox.stop()

    def inject_faults(self, rate: float) -> None:
        """A burst of 429s and one write that happens but fails, then `rate` of random faults."""
        faults = self.sandbox.faults
        faults.queue(Fault(kind="status", status=429, headers={"Retry-After": "0"}), self.is_write, times=3)
        faults.queue(Fault(kind="status", status=503, when="after"), self.is_write)
        faults.random(rate, list(FAULT_MIX), matches=self.is_write)

    def numbers(self) -> collections.Counter[str]:
        """How many stored invoices carry each invoice number."""
        return collections.Counter(invoice.number for invoice in self.stored())

    def writes(self) -> int:
        with self.sandbox.lock:
            return sum(1 for request in self.sandbox.log if self.is_write(request))


def _secret_file(workdir: Path, name: str, value: str) -> Path:
    folder = workdir / "secrets"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / name
    path.write_text(value, encoding="utf-8")
    path.chmod(0o600)
    return path


class QuickBooksHarness(SinkHarness):
    """QuickBooks Online: OAuth with a rotating refresh token kept in a file."""

    kind = "quickbooks"
    correlates = True
    rejection_text = "Invalid Reference Id"
    CUSTOMER_IDS: ClassVar[dict[str, str]] = {
        "CUST-ACME": "1",
        "CUST-GLOBEX": "2",
        "CUST-INITECH": "58",
        "CUST-UMBRELLA": "59",
        "CUST-HOOLI": "60",
        "CUST-WAYNE": "61",
    }
    ITEM_IDS: ClassVar[dict[str, str]] = {
        "PLAN-PRO": "2",
        "CLD-PRO-SEAT": "2",
        "PLAN-ENT": "3",
        "CLD-ENT-ANNUAL": "3",
        "ADDON-SSO": "4",
        "TRAINING": "1",
    }

    # A US company with automated sales tax: it would add its own tax where the invoice states none.
    TAX_SANDBOX: ClassVar[Mapping[str, Any]] = {"tax_mode": "us", "automated_sales_tax": True}
    TAX_SINK: ClassVar[Mapping[str, Any]] = {"tax_mode": "us"}

    def __init__(self, hidden_customers: Iterable[str] = (), **sandbox: Any) -> None:
        super().__init__(hidden_customers)
        customers = {
            self.CUSTOMER_IDS[ref]: name for ref, name in EXAMPLE_CUSTOMERS.items() if ref not in self.hidden
        }
        items = {"1": "Services", "2": "Seats", "3": "Enterprise", "4": "SSO"}
        self.sandbox = self.qbo = QuickBooksSandbox(customers=customers, items=items, **sandbox)

    def sink_block(self, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
        block = {
            "name": SINK_NAME,
            "type": "quickbooks",
            "base_url": self.qbo.url,
            "token_url": self.qbo.url + TOKEN_PATH,
            "realm_id": self.qbo.realm_id,
            "client_id": self.qbo.client_id,
            "client_secret_env": "E2E_QBO_CLIENT_SECRET",
            "refresh_token_env": "E2E_QBO_REFRESH_TOKEN",
            "refresh_token_file": str(workdir / "secrets" / "qbo-token.json"),
            "customer_refs": dict(self.CUSTOMER_IDS),
            "item_refs": dict(self.ITEM_IDS),
            "terms_refs": {"NET30": "3", "NET60": "4"},
            "throttle_wait_seconds": 0.0,
            "read_timeout": READ_TIMEOUT,
        }
        (workdir / "secrets").mkdir(mode=0o700, exist_ok=True)
        env = {
            "E2E_QBO_CLIENT_SECRET": self.qbo.client_secret,
            "E2E_QBO_REFRESH_TOKEN": self.qbo.initial_refresh_token,
        }
        return block, env

    def is_write(self, request: Request) -> bool:
        return request.method == "POST" and request.path.endswith(("/invoice", "/batch"))

    def stored(self) -> list[StoredInvoice]:
        return [
            StoredInvoice(
                str(invoice["DocNumber"]),
                Decimal(str(invoice["TotalAmt"])),
                str(invoice["CurrencyRef"]["value"]),
            )
            for invoice in self.qbo.invoices
        ]

    def reveal_customer(self, customer_ref: str) -> None:
        with self.qbo.lock:
            self.qbo.customers[self.CUSTOMER_IDS[customer_ref]] = EXAMPLE_CUSTOMERS[customer_ref]

    def api_calls(self) -> int:
        return self.qbo.api_calls()


class XeroHarness(SinkHarness):
    """Xero: a bearer token from the environment, contacts by ContactID."""

    kind = "xero"
    correlates = True
    rejection_text = "could not be found"
    PER_MINUTE = 6000
    TAX_SANDBOX: ClassVar[Mapping[str, Any]] = {
        "tax_rates": (
            *UK_TAX_RATES,
            {"Name": "NY Sales Tax", "TaxType": "TAX002", "EffectiveRate": Decimal("8.875")},
            {"Name": "TX Sales Tax", "TaxType": "TAX003", "EffectiveRate": Decimal("8.25")},
            {"Name": "CA Sales Tax", "TaxType": "TAX004", "EffectiveRate": Decimal("7.25")},
            {"Name": "MA Sales Tax", "TaxType": "TAX005", "EffectiveRate": Decimal("6.25")},
        ),
        "tax_rate": Decimal("0.20"),  # lines without a TaxType would take the account's 20%
    }
    TAX_SINK: ClassVar[Mapping[str, Any]] = {
        "tax_types": {
            "SALES_TAX:US-NY": "TAX002",
            "SALES_TAX:US-TX": "TAX003",
            "SALES_TAX:US-CA": "TAX004",
            "SALES_TAX:US-MA": "TAX005",
            "SALES_TAX:E": "EXEMPTOUTPUT",
            "S:20": "OUTPUT2",
            "E": "EXEMPTOUTPUT",
            "AE": "ECZROUTPUTSERVICES",
        }
    }

    def __init__(self, hidden_customers: Iterable[str] = (), **sandbox: Any) -> None:
        super().__init__(hidden_customers)
        self.contact_ids = {
            ref: str(uuid.uuid5(uuid.NAMESPACE_URL, f"xero/{ref}")) for ref in EXAMPLE_CUSTOMERS
        }
        contacts = {ref: self.contact_ids[ref] for ref in EXAMPLE_CUSTOMERS if ref not in self.hidden}
        # Xero's 60 calls a minute are covered by the sink's own tests; here they would only slow
        # the runs down, so both the sink's budget and the sandbox's are raised.
        sandbox.setdefault("minute_limit", self.PER_MINUTE)
        self.sandbox = self.xero = XeroSandbox(contacts=contacts, **sandbox)

    def sink_block(self, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
        block = {
            "name": SINK_NAME,
            "type": "xero",
            "base_url": self.xero.api_url,
            "tenant_id": self.xero.tenant_id,
            "access_token_env": "E2E_XERO_ACCESS_TOKEN",
            "contact_ids": dict(self.contact_ids),
            "per_minute": self.PER_MINUTE,
            "read_timeout": READ_TIMEOUT,
        }
        return block, {"E2E_XERO_ACCESS_TOKEN": self.xero.access_token}

    def is_write(self, request: Request) -> bool:
        return request.method in ("PUT", "POST") and request.path.rstrip("/") == f"{API}/Invoices"

    def stored(self) -> list[StoredInvoice]:
        return [
            StoredInvoice(
                str(invoice["InvoiceNumber"]), Decimal(str(invoice["Total"])), invoice["CurrencyCode"]
            )
            for invoice in self.xero.invoices
            if invoice["Type"] == "ACCREC"
        ]

    def reveal_customer(self, customer_ref: str) -> None:
        self.xero.add_contact(customer_ref, self.contact_ids[customer_ref])


class NetSuiteHarness(SinkHarness):
    """NetSuite: an OAuth 2.0 access token read from a file, upserts by external id."""

    kind = "netsuite"
    rejection_text = "Invalid Field Value"
    CUSTOMER_IDS: ClassVar[dict[str, str]] = {
        "CUST-ACME": "101",
        "CUST-GLOBEX": "102",
        "CUST-INITECH": "103",
        "CUST-UMBRELLA": "104",
        "CUST-HOOLI": "105",
        "CUST-WAYNE": "106",
    }
    ITEM_IDS: ClassVar[dict[str, str]] = {
        "PLAN-PRO": "501",
        "CLD-PRO-SEAT": "501",
        "PLAN-ENT": "502",
        "CLD-ENT-ANNUAL": "502",
        "ADDON-SSO": "503",
        "TRAINING": "504",
    }

    # A SuiteTax account whose engine would tax every line at the NY rate if the invoice stated none.
    TAX_SANDBOX: ClassVar[Mapping[str, Any]] = {"default_tax_code": "11"}
    TAX_SINK: ClassVar[Mapping[str, Any]] = {
        "tax_codes": {
            "SALES_TAX:US-NY": "11",
            "SALES_TAX:US-TX": "12",
            "SALES_TAX:US-CA": "13",
            "SALES_TAX:US-MA": "14",
            "SALES_TAX:E": "30",
            "S:20": "20",
            "E": "30",
            "AE": "30",
        }
    }

    def __init__(self, hidden_customers: Iterable[str] = (), **sandbox: Any) -> None:
        super().__init__(hidden_customers)
        customers = {self.CUSTOMER_IDS[ref] for ref in EXAMPLE_CUSTOMERS if ref not in self.hidden}
        items = set(self.ITEM_IDS.values())
        self.sandbox = self.ns = NetSuiteSandbox(customers=customers, items=items, **sandbox)

    def sink_block(self, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
        token = _secret_file(workdir, "netsuite-token", self.ns.token + "\n")
        block = {
            "name": SINK_NAME,
            "type": "netsuite",
            "base_url": self.ns.url + PREFIX,
            "access_token_file": str(token),
            "customer_ids": dict(self.CUSTOMER_IDS),
            "item_ids": dict(self.ITEM_IDS),
            "read_timeout": READ_TIMEOUT,
        }
        return block, {}

    def is_write(self, request: Request) -> bool:
        return request.method == "PUT" and "/record/v1/invoice/" in request.path

    def stored(self) -> list[StoredInvoice]:
        with self.ns.lock:
            return [
                StoredInvoice(str(record["externalId"]), record["total"], None)
                for record in self.ns.invoices.values()
            ]

    def reveal_customer(self, customer_ref: str) -> None:
        with self.ns.lock:
            self.ns.customers.add(self.CUSTOMER_IDS[customer_ref])


class _AnyLine(set[int]):
    """Every PO line number."""

    def __contains__(self, item: object) -> bool:
        return True


class _KnownOrders(dict[str, set[int]]):
    """The buyer's orders: every PO it issued (any line) except those of hidden customers."""

    def __init__(self, hidden_pos: set[str]) -> None:
        super().__init__()
        self.hidden_pos = hidden_pos

    def get(self, key: str, default: Any = None) -> Any:
        return None if key in self.hidden_pos else _AnyLine()


class CxmlBuyerHarness(SinkHarness):
    """A Coupa-style buyer taking cXML InvoiceDetailRequests; the shared secret sits in a file."""

    kind = "cxml-invoice"
    rejection_text = "Could not find order header"

    def __init__(self, hidden_customers: Iterable[str] = (), **sandbox: Any) -> None:
        super().__init__(hidden_customers)
        dtd = SHARED_FIXTURES / "cxml" / "InvoiceDetail-1.2.037.dtd"
        hidden_pos = {po for ref in self.hidden for po in EXAMPLE_POS[ref]}
        self.orders = _KnownOrders(hidden_pos)
        sandbox.setdefault("dtd_path", dtd if dtd.exists() else None)
        self.sandbox = self.buyer = CxmlBuyerSandbox(orders=self.orders, **sandbox)

    def sink_block(self, workdir: Path) -> tuple[dict[str, Any], dict[str, str]]:
        secret = _secret_file(workdir, "cxml-shared-secret", self.buyer.shared_secret)
        block = {
            "name": SINK_NAME,
            "type": "cxml-invoice",
            "url": self.buyer.url + INVOICE_PATH,
            "from_domain": "DUNS",
            "from_identity": self.buyer.supplier_identity,
            "to_domain": "NetworkID",
            "to_identity": self.buyer.buyer_identity,
            "sender_domain": "DUNS",
            "sender_identity": self.buyer.supplier_identity,
            "shared_secret_file": str(secret),
            "archive_dir": str(workdir / "out" / "cxml-sent"),
            "read_timeout": READ_TIMEOUT,
        }
        return block, {}

    def is_write(self, request: Request) -> bool:
        return request.method == "POST" and request.path == INVOICE_PATH

    def stored(self) -> list[StoredInvoice]:
        with self.buyer.lock:
            return [
                StoredInvoice(number, invoice["due_amount"], invoice["currency"])
                for number, invoice in self.buyer.invoices.items()
            ]

    def reveal_customer(self, customer_ref: str) -> None:
        self.orders.hidden_pos -= set(EXAMPLE_POS[customer_ref])


HARNESSES: dict[str, type[SinkHarness]] = {
    harness.kind: harness for harness in (QuickBooksHarness, XeroHarness, NetSuiteHarness, CxmlBuyerHarness)
}

# Retries across runs fall due within a second, so a re-run right after a failure has work.
FAST_PUSH: dict[str, Any] = {"retry_base_seconds": 1, "retry_max_seconds": 1, "max_attempts": 20}


# -- config files ------------------------------------------------------------------------------
def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def dump_toml(data: Mapping[str, Any]) -> str:
    """TOML text of a config mapping: tables, arrays of tables, inline tables below those."""
    lines: list[str] = []

    def table(prefix: str, body: Mapping[str, Any]) -> None:
        for key, value in body.items():
            if not isinstance(value, Mapping) and not _is_table_list(value):
                lines.append(f"{json.dumps(key)} = {_value(value)}")
        for key, value in body.items():
            name = f"{prefix}.{json.dumps(key)}" if prefix else json.dumps(key)
            if isinstance(value, Mapping):
                lines.extend(["", f"[{name}]"])
                table(name, value)
            elif _is_table_list(value):
                for item in value:
                    lines.extend(["", f"[[{name}]]"])
                    lines.extend(f"{json.dumps(k)} = {_value(v)}" for k, v in item.items())

    table("", data)
    return "\n".join(lines) + "\n"


def example_config(
    workdir: Path,
    sinks: list[dict[str, Any]],
    *,
    push: Mapping[str, Any] | None = None,
    with_example: bool = True,
    taxed: bool = False,
) -> Path:
    """A config in `workdir`: the example's sources, billing and maps (copied; untaxed unless
    `taxed`) with these sinks."""
    if with_example:
        config = copy_example(workdir)
        if not taxed:
            untax_example(config)
        data = tomllib.loads(config.read_text(encoding="utf-8"))
    else:
        config = workdir / "config.toml"
        data = {"state": {"url": "sqlite:///out/po-connector.db"}}
    (workdir / "out").mkdir(exist_ok=True)
    data["sinks"] = sinks
    data.setdefault("push", {}).update(push or {})
    data.setdefault("log", {})["format"] = "json"
    config.write_text(dump_toml(data), encoding="utf-8")
    return config


def state_engine(config: Path) -> Engine:
    """An engine on the SQLite state a config names (relative to the config's folder)."""
    url = tomllib.loads(config.read_text(encoding="utf-8"))["state"]["url"]
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        url = prefix + str(config.parent / url[len(prefix) :])
    return make_engine(url)


def outbox_counts(config: Path) -> dict[str, int]:
    """Outbox rows per state for the example's sink."""
    engine = state_engine(config)
    try:
        with engine.connect() as conn:
            return outbox_queries.count_by_state(conn, TENANT).get(SINK_NAME, {})
    finally:
        engine.dispose()


def outbox_rows(config: Path) -> list[dict[str, Any]]:
    """Every outbox row of the example's tenant, as `state outbox` lists them."""
    engine = state_engine(config)
    try:
        with engine.connect() as conn:
            return outbox_queries.list_rows(conn, TENANT)
    finally:
        engine.dispose()


def _refused_in_file(key: str) -> bool:
    """Mirrors the config loader's check for secrets written inline."""
    return is_sensitive_key(key) and not key.endswith(("_env", "_file"))


@dataclass
class SinkSetup:
    """A running sandbox, the config pointing the sink at it and the environment for the CLI."""

    harness: SinkHarness
    config: Path
    env: dict[str, str]


@contextmanager
def sink_setup(
    kind: str,
    workdir: Path,
    *,
    hidden_customers: Iterable[str] = (),
    push: Mapping[str, Any] | None = None,
    sink: Mapping[str, Any] | None = None,
    sandbox: Mapping[str, Any] | None = None,
    example: bool = True,
    taxed: bool = False,
) -> Iterator[SinkSetup]:
    """Start the `kind` sandbox and write the example's config with that sink; stop it after.

    With `example=False` the config holds only the state and the sink (for pushing plans made
    elsewhere, as the push benchmark does). With `taxed` the example keeps its tax (US sales
    tax, the UK customer, reverse charge) and the sandbox and sink are set up for it.
    """
    factory = HARNESSES[kind]
    settings = {**(factory.TAX_SANDBOX if taxed else {}), **dict(sandbox or {})}
    harness = factory(hidden_customers, **settings).start()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "out").mkdir(exist_ok=True)
        block, env = harness.sink_block(workdir)
        block.update(harness.TAX_SINK if taxed else {})
        block.update(sink or {})
        written = {key: value for key, value in block.items() if not _refused_in_file(key)}
        if written != block:
            # The config loader takes some plain keys (`token_url`) for inline secrets; the
            # environment override is not checked that way, so the whole list comes from there.
            env[f"{ENV_PREFIX}SINKS"] = json.dumps([block])
        config = example_config(
            workdir, [written], push={**FAST_PUSH, **(push or {})}, with_example=example, taxed=taxed
        )
        yield SinkSetup(harness, config, dict(env))
    finally:
        harness.stop()
