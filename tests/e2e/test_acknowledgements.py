"""PO acknowledgements through the CLI against a Coupa-like sandbox over real HTTP: each accepted
PO version is marked exported once, a revision again, and an unknown SKU waits for support."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.sandboxes.base import Fault
from tests.sandboxes.coupa import CoupaSandbox
from tests.support.cli import run_cli


@pytest.fixture
def sandbox() -> Iterator[CoupaSandbox]:
    box = CoupaSandbox()
    box.start()
    yield box
    box.stop()


def _config(tmp_path: Path, sandbox: CoupaSandbox, scopes: str) -> Path:
    (tmp_path / "customers.toml").write_text(
        '[[customers]]\ncustomer_ref = "CUST-ACME"\nname = "Acme Corp"\nbuyer_ids = ["acme.example"]\n',
        encoding="utf-8",
    )
    (tmp_path / "skus.toml").write_text(
        '[skus]\nPLAN-PRO = ["PRO-SEAT", "SKU-PRO"]\nADDON-SSO = ["SSO"]\n', encoding="utf-8"
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///state.db"

[mappings]
customers = "customers.toml"
skus = "skus.toml"

[[sources]]
name = "acme-coupa"
type = "coupa"
base_url = "{sandbox.url}"
client_id = "{sandbox.client_id}"
client_secret_env = "ACME_COUPA_SECRET"
buyer_id = "acme.example"
scopes = "{scopes}"
timeout_connect = 2.0
timeout_read = 2.0
max_attempts = 4
""",
        encoding="utf-8",
    )
    return config


def _cli(config: Path, sandbox: CoupaSandbox, *args: str) -> Any:
    return run_cli(*args, "--config", str(config), "--json", env={"ACME_COUPA_SECRET": sandbox.client_secret})


WRITE = "core.purchase_order.read core.purchase_order.write"


def test_accepted_pos_are_marked_exported_once_and_a_revision_again(
    tmp_path: Path, sandbox: CoupaSandbox
) -> None:
    known = sandbox.add_po(po_number="PO-1", lines=[{"source-part-num": "PRO-SEAT"}])
    sandbox.add_po(po_number="PO-2", lines=[{"source-part-num": "SSO"}])
    config = _config(tmp_path, sandbox, WRITE)
    first = _cli(config, sandbox, "sync")
    assert first.code == 0, first.stderr[-2000:]
    assert first.json()["acknowledgements_sent"] == 2
    assert sorted(sandbox.exports) == [(known["id"], 1), (known["id"] + 1, 1)]

    again = _cli(config, sandbox, "sync")
    assert again.code == 0 and again.json().get("acknowledgements_sent", 0) == 0
    assert len(sandbox.exports) == 2

    line = known["order-lines"][0]
    lines = [{**line, "quantity": "30.00", "total": str(30 * Decimal(line["price"]))}]
    sandbox.update_po(known["id"], **{"order-lines": lines})  # a new version: more seats
    revised = _cli(config, sandbox, "sync")
    assert revised.code == 0, revised.stderr[-2000:]
    assert revised.json()["acknowledgements_sent"] == 1
    assert sandbox.exports[-1] == (known["id"], 2)
    listed = _cli(config, sandbox, "po", "acks").json()
    assert [(row["po_number"], row["revision"], row["state"]) for row in listed] == [
        ("PO-1", 1, "sent"),
        ("PO-2", 1, "sent"),
        ("PO-1", 2, "sent"),
    ]


def test_an_unknown_sku_waits_for_support_who_accepts_or_rejects(
    tmp_path: Path, sandbox: CoupaSandbox
) -> None:
    odd = sandbox.add_po(po_number="PO-9", lines=[{"source-part-num": "HARDWARE-1"}])
    config = _config(tmp_path, sandbox, WRITE)
    synced = _cli(config, sandbox, "sync")
    assert synced.code == 0 and synced.json()["acknowledgements_waiting"] == 1
    assert sandbox.exports == []
    [waiting] = _cli(config, sandbox, "po", "acks", "--waiting").json()
    assert waiting["po_number"] == "PO-9" and "HARDWARE-1" in waiting["reason"]
    status = _cli(config, sandbox, "status").json()
    assert [(row["po_number"], row["state"]) for row in status["acknowledgements_open"]] == [
        ("PO-9", "waiting")
    ]

    rejected = _cli(config, sandbox, "po", "reject", "PO-9", "--reason", "hardware is not sold by us")
    assert rejected.code == 0, rejected.stderr
    assert sandbox.exports == []  # Coupa's PO API carries no rejection: left unexported
    accepted = _cli(config, sandbox, "po", "accept", "PO-9", "--reason", "resold under PLAN-PRO")
    assert accepted.code == 0, accepted.stderr
    assert sandbox.exports == [(odd["id"], 1)]
    assert _cli(config, sandbox, "po", "acks", "--waiting").json() == []


def test_a_lost_answer_is_sent_again_and_a_missing_scope_is_a_configuration_error(
    tmp_path: Path, sandbox: CoupaSandbox
) -> None:
    po = sandbox.add_po(po_number="PO-5", lines=[{"source-part-num": "PRO-SEAT"}])
    config = _config(tmp_path, sandbox, "core.purchase_order.read")
    refused = _cli(config, sandbox, "sync")
    assert refused.code == 1 and refused.json()["acknowledgements_failed"] == 1
    assert "core.purchase_order.write" in refused.stderr and sandbox.exports == []

    config = _config(tmp_path, sandbox, WRITE)
    # Coupa marks it, then the connection drops before the answer: sent again, which is harmless
    sandbox.faults.queue(Fault("reset", when="after"), matches=lambda request: request.method == "PUT")
    assert _cli(config, sandbox, "po", "accept", "PO-5").code == 0
    assert sandbox.exports == [(po["id"], 1), (po["id"], 1)] and sandbox.pos[po["id"]]["exported"] is True
    listed = _cli(config, sandbox, "po", "acks").json()
    assert [(row["state"], row["decided_by"]) for row in listed] == [("sent", "support")]
