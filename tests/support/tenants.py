"""A folder of tenant configs, one file each, as `sync --tenants DIR` and the Celery workers read it.

Each tenant is a copy of the bundled example under `root/data/<tenant>` (inbox, billing export,
maps, its own SQLite state and output), and its config `root/tenants/<tenant>.toml` names those
files by absolute path. The e-invoice rules are left out: they cost seconds per process and
are tested with the sink.
"""

from __future__ import annotations

import queue
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sandboxes.base import Reply, Request
from tests.sandboxes.xero import API, XeroSandbox
from tests.support.cli import copy_example, untax_example
from tests.support.sink_sandboxes import EXAMPLE_CUSTOMERS, XeroHarness, dump_toml

# A sink block for tenant number `index` (from 0) whose data lives in `workdir`.
SinkFor = Callable[[int, Path], dict[str, Any]]


def tenant_name(index: int) -> str:
    return f"t{index + 1:02d}"


def write_tenants(root: Path, count: int, *, sink_for: SinkFor | None = None, taxed: bool = True) -> Path:
    """`count` tenants t01, t02, ...; returns the folder of their configs.

    Without `sink_for` each writes UBL files to its own `out/invoices` (which needs the taxed
    example: untaxed plans are refused); an API sink usually wants `taxed=False`.
    """
    folder = root / "tenants"
    folder.mkdir(parents=True)
    for index in range(count):
        name = tenant_name(index)
        work = root / "data" / name
        work.mkdir(parents=True)
        example = copy_example(work)
        if not taxed:
            untax_example(example)
        data = tomllib.loads(example.read_text(encoding="utf-8"))
        example.unlink()  # the tenant's config is the one in the folder
        data["tenant"] = name
        data["state"]["url"] = f"sqlite:///{work / 'out' / 'po-connector.db'}"
        data["mappings"] = {key: str(work / value) for key, value in data["mappings"].items()}
        for block in data["sources"]:
            block["maildir"] = str(work / block["maildir"])
        for block in data["billing"]:
            block["path"] = str(work / block["path"])
        if sink_for is None:
            sink = dict(data["sinks"][0])
            sink["directory"] = str(work / sink["directory"])
            sink.pop("rules_dir", None)
        else:
            sink = sink_for(index, work)
        data["sinks"] = [sink]
        data.setdefault("log", {})["format"] = "json"
        (work / "out").mkdir(exist_ok=True)
        (folder / f"{name}.toml").write_text(dump_toml(data), encoding="utf-8")
    return folder


def state_url(folder: Path, tenant: str) -> str:
    """The SQLite URL of a tenant written by `write_tenants`."""
    return str(tomllib.loads((folder / f"{tenant}.toml").read_text(encoding="utf-8"))["state"]["url"])


class HeldXero(XeroSandbox):
    """A Xero organisation that stores an invoice create at once and answers `hold` s later, as
    a slow API does: the push is in flight all that time. With `in_flight`, each create puts the
    organisation's index there first, so a test knows whose push is outstanding."""

    def __init__(
        self, index: int, hold: float, in_flight: queue.Queue[int] | None = None, **options: Any
    ) -> None:
        super().__init__(**options)
        self.index = index
        self.hold = hold
        self.in_flight = in_flight

    def handle(self, request: Request) -> Reply:
        reply = super().handle(request)
        if self.is_create(request) and reply.status == 200:
            if self.in_flight is not None:
                self.in_flight.put(self.index)
            time.sleep(self.hold)
        return reply

    @staticmethod
    def is_create(request: Request) -> bool:
        return request.method == "PUT" and request.path.rstrip("/") == f"{API}/Invoices"

    def creates(self) -> int:
        with self.lock:
            return sum(1 for request in self.log if self.is_create(request))


@dataclass
class XeroBooks:
    """One held-back Xero organisation per tenant, the sink block and the environment it needs."""

    harnesses: list[XeroHarness]
    sandboxes: list[HeldXero]
    block: dict[str, Any]
    env: dict[str, str]

    def sink_for(self, index: int, _workdir: Path) -> dict[str, Any]:
        """The `[[sinks]]` block of tenant `index`: its own organisation."""
        return {**self.block, "base_url": self.sandboxes[index].api_url}


@contextmanager
def xero_books(count: int, hold: float, in_flight: queue.Queue[int] | None = None) -> Iterator[XeroBooks]:
    """Start `count` held-back Xero organisations knowing the example's customers; stop them after."""
    harnesses: list[XeroHarness] = []
    sandboxes: list[HeldXero] = []
    try:
        for index in range(count):
            harness = XeroHarness()
            contacts = {ref: harness.contact_ids[ref] for ref in EXAMPLE_CUSTOMERS}
            sandbox = HeldXero(index, hold, in_flight, contacts=contacts, minute_limit=XeroHarness.PER_MINUTE)
            harness.sandbox = harness.xero = sandbox
            harnesses.append(harness)
            sandboxes.append(sandbox)
            harness.start()
        block, env = harnesses[0].sink_block(Path())  # every organisation takes the same token
        yield XeroBooks(harnesses, sandboxes, block, env)
    finally:
        for harness in harnesses:
            harness.stop()
