"""PO acknowledgements to a cXML buyer through the CLI: a ConfirmationRequest per accepted order
revision, posted once over real HTTP, re-sent under the same payloadID after a lost answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sandboxes.base import Fault
from tests.sandboxes.cxml_confirmations import CONFIRMATION_PATH, CxmlConfirmationBuyer
from tests.support.cli import run_cli
from tests.support.shared import shared_fixture

SECRET = "coyote"
ENV = {"PROMINATE_SHARED_SECRET": SECRET}


@pytest.fixture
def buyer() -> Iterator[CxmlConfirmationBuyer]:
    box = CxmlConfirmationBuyer(shared_secret=SECRET, orders={"DO1234"})
    with box:
        yield box


def _config(tmp_path: Path, buyer: CxmlConfirmationBuyer) -> Path:
    orders = tmp_path / "orders"
    orders.mkdir()
    (orders / "order.xml").write_bytes(shared_fixture("cxml/OrderRequest-generic.xml").read_bytes())
    (tmp_path / "customers.toml").write_text(
        '[[customers]]\ncustomer_ref = "CUST-PROM"\nname = "Prominate"\n'
        'buyer_ids = ["inbound@prominate-platform.com"]\n',
        encoding="utf-8",
    )
    config = tmp_path / "config.toml"
    config.write_text(
        f"""
[state]
url = "sqlite:///state.db"

[mappings]
customers = "customers.toml"

[push]
retry_base_seconds = 1
retry_max_seconds = 1

[[sources]]
name = "buyers-cxml"
type = "cxml"
folder = "orders"
include_test_orders = true

[[sources.buyers]]
name = "prominate"
from_domain = "NetworkId"
from_identity = "inbound@prominate-platform.com"
to_identity = "supplier@supplier.com"
shared_secret_env = "PROMINATE_SHARED_SECRET"
confirmation_url = "{buyer.url}{CONFIRMATION_PATH}"
""",
        encoding="utf-8",
    )
    return config


def _cli(config: Path, *args: str) -> Any:
    return run_cli(*args, "--config", str(config), "--json", env=ENV)


def _revise(config: Path) -> None:
    """The buyer's change order: the same orderID, a new payloadID, type update, more of line 1."""
    text = shared_fixture("cxml/OrderRequest-generic.xml").read_text(encoding="utf-8")
    text = text.replace('payloadID="1625586002.193314.7293@dev"', 'payloadID="1625586999.2@dev"')
    text = text.replace('type="new"', 'type="update"', 1)
    assert 'type="update"' in text
    (config.parent / "orders" / "order-update.xml").write_text(
        text.replace('quantity="10"', 'quantity="12"', 1).replace(">85.00<", ">89.20<", 1), encoding="utf-8"
    )


def test_an_accepted_order_is_confirmed_once_and_its_revision_again(
    tmp_path: Path, buyer: CxmlConfirmationBuyer
) -> None:
    config = _config(tmp_path, buyer)
    first = _cli(config, "sync")
    assert first.code == 0, first.stderr[-2000:]
    assert first.json()["acknowledgements_sent"] == 1
    [confirmation] = buyer.received.values()
    assert (
        confirmation["type"] == "accept"
        and confirmation["document_reference"] == "1625586002.193314.7293@dev"
    )
    assert SECRET not in first.stderr

    assert _cli(config, "sync").json().get("acknowledgements_sent", 0) == 0
    assert buyer.posts == 1

    _revise(config)
    revised = _cli(config, "sync")
    assert revised.code == 0, revised.stderr[-2000:]
    assert revised.json()["acknowledgements_sent"] == 1 and len(buyer.received) == 2
    assert {item["document_reference"] for item in buyer.received.values()} == {
        "1625586002.193314.7293@dev",
        "1625586999.2@dev",
    }


def test_a_rejection_replaces_the_acceptance_with_its_reason(
    tmp_path: Path, buyer: CxmlConfirmationBuyer
) -> None:
    config = _config(tmp_path, buyer)
    assert _cli(config, "sync").code == 0
    rejected = _cli(config, "po", "reject", "DO1234", "--reason", "the ship-to is outside our service area")
    assert rejected.code == 0, rejected.stderr
    assert buyer.standing() == {"DO1234": "reject"}
    assert any(
        item["comments"] == "the ship-to is outside our service area" for item in buyer.received.values()
    )


def test_a_lost_answer_is_sent_again_under_the_same_payload_id(
    tmp_path: Path, buyer: CxmlConfirmationBuyer
) -> None:
    config = _config(tmp_path, buyer)
    buyer.faults.queue(Fault("reset", when="after"))
    first = _cli(config, "sync")
    assert first.code == 0, first.stderr[-2000:]
    assert first.json()["acknowledgements_waiting_retry"] == 1
    assert len(buyer.received) == 1  # the buyer has it; we do not know
    time.sleep(1.2)
    second = _cli(config, "sync")
    assert second.code == 0 and second.json()["acknowledgements_sent"] == 1
    assert len(buyer.received) == 1 and buyer.duplicates == 1


def test_refused_credentials_go_dead_and_support_sees_why(
    tmp_path: Path, buyer: CxmlConfirmationBuyer
) -> None:
    config = _config(tmp_path, buyer)
    refused = run_cli("sync", "--config", str(config), "--json", env={"PROMINATE_SHARED_SECRET": "wolf"})
    assert refused.code == 1 and refused.json()["acknowledgements_failed"] == 1
    [row] = _cli(config, "po", "acks").json()
    assert row["state"] == "dead" and "credentials" in row["error"] and "wolf" not in row["error"]


def test_a_crash_after_the_buyer_took_it_sends_it_again_as_a_duplicate_only(
    tmp_path: Path, buyer: CxmlConfirmationBuyer
) -> None:
    config = _config(tmp_path, buyer)
    crashed = run_cli(
        "sync", "--config", str(config), "--json", env={**ENV, "PO_CONNECTOR_CRASH_AT": "after-remote-create"}
    )
    assert crashed.code == 137
    assert len(buyer.received) == 1  # the buyer has it; the acknowledgement still says sending
    recovered = _cli(config, "sync")
    assert recovered.code == 0, recovered.stderr[-2000:]
    assert recovered.json()["acknowledgements_sent"] == 1
    assert len(buyer.received) == 1 and buyer.duplicates == 1
    assert [row["state"] for row in _cli(config, "po", "acks").json()] == ["sent"]
