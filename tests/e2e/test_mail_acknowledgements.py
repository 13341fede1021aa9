"""E-mailed POs are acknowledged by a reply e-mail, once per PO revision, on the bundled example.

The example's POs arrive as CSV attachments; each accepted revision gets a reply to the message
it came in (`In-Reply-To` and `References` its Message-ID, to its sender), written by the
"files" mail transport into `out/mail/`. A second sync sends nothing; a rejection by support is
a second reply for that revision, with the reason.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import cast

import pytest

from tests.support.cli import copy_example, run_cli

# Renewal requests are e-mailed too; left out here (tests/e2e/test_renewal_mail.py has them).
ENV = {"PO_CONNECTOR__MAIL__RENEWAL_REQUESTS": "false"}
INBOX = "examples/inbox"


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def replies(config: Path) -> dict[str, EmailMessage]:
    found = {}
    for path in sorted((config.parent / "out" / "mail").glob("*.eml")):
        message = cast(EmailMessage, message_from_bytes(path.read_bytes(), policy=default))
        found[str(message["Message-ID"])] = message
    return found


def order_ids(config: Path) -> dict[str, str]:
    """Message-ID -> From of each order e-mail of the example's inbox."""
    ids = {}
    for path in (config.parent / INBOX).glob("*.eml"):
        message = message_from_bytes(path.read_bytes(), policy=default)
        ids[str(message["Message-ID"])] = str(message["From"])
    return ids


def test_each_accepted_po_revision_gets_one_reply_threaded_with_its_order(example: Path) -> None:
    first = run_cli("sync", "--config", str(example), "--json", env=ENV)
    assert first.code == 0, first.stderr
    assert first.json()["acknowledgements_sent"] == 7
    sent = replies(example)
    assert len(sent) == 7
    orders = order_ids(example)
    for message in sent.values():
        assert message["In-Reply-To"] in orders and message["References"] == message["In-Reply-To"]
        assert "accepted" in str(message["Subject"])
        assert message["To"].addresses[0].addr_spec in orders[str(message["In-Reply-To"])]
    acme = [m for m in sent.values() if "ACME-PO-1001" in str(m["Subject"])]
    assert len(acme) == 1
    body = acme[0].get_content()
    assert "ACME-PO-1001 (revision 1)" in body and "24000.00 USD" in body

    again = run_cli("sync", "--config", str(example), "--json", env=ENV)
    assert again.code == 0 and again.json().get("acknowledgements_sent", 0) == 0
    assert replies(example).keys() == sent.keys()


def test_a_rejection_is_a_second_reply_with_the_reason(example: Path) -> None:
    assert run_cli("sync", "--config", str(example), "-q", env=ENV).code == 0
    rejected = run_cli(
        "po", "reject", "UMB-2026-044", "--reason", "the unit price is not our list price",
        "--config", str(example), "--json", env=ENV,
    )  # fmt: skip
    assert rejected.code == 0, rejected.stderr
    sent = [m for m in replies(example).values() if "UMB-2026-044" in str(m["Subject"])]
    assert sorted(str(m["Subject"]) for m in sent) == [
        "Re: purchase order UMB-2026-044 accepted",
        "Re: purchase order UMB-2026-044 not accepted",
    ]
    [refusal] = [m for m in sent if "not accepted" in str(m["Subject"])]
    assert "the unit price is not our list price" in refusal.get_content()
    # the rejected PO is not invoiced against: its period is now missing a PO
    report = run_cli("report", "--config", str(example), "--format", "json", env=ENV).json()
    umbrella = [row for row in report["rows"] if row["customer_ref"] == "CUST-UMBRELLA" and row["subject"]]
    assert [row["status"] for row in umbrella if "billing" in row["subject"]] == ["missing_po"]


def test_mail_list_replies_and_status_show_the_replies(example: Path) -> None:
    assert run_cli("sync", "--config", str(example), "-q", env=ENV).code == 0
    listed = run_cli("mail", "list", "--replies", "--config", str(example), "--json", env=ENV)
    assert listed.code == 0, listed.stderr
    rows = listed.json()
    assert len(rows) == 7 and {row["state"] for row in rows} == {"sent"}
    assert {row["decision"] for row in rows} == {"accept"} and all(row["in_reply_to"] for row in rows)
    status = run_cli("status", "--config", str(example), "--json", env=ENV)
    assert status.code == 0, status.stderr
    assert status.json()["mail"]["replies_open"] == []
