"""Renewal PO requests on the bundled example, through the CLI: each asked for exactly once.

The example mails with the "files" transport (`out/mail/`, no network). On 2026-12-07 Acme's
ACME-PO-1001 ends within the 30-day window and Globex's annual PO 4500012345 is fully used;
Initech's November period has no PO, but Initech has no AP e-mail in the customer master.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import cast

import pytest

from tests.support.cli import copy_example, run_cli

# The replies acknowledging the example's e-mailed POs go to out/mail too: left out here (they
# have their own test, tests/e2e/test_mail_acknowledgements.py), so only renewal requests count.
ENV = {"PO_CONNECTOR__RECONCILE__AS_OF": "2026-12-07", "PO_CONNECTOR__MAIL__ACKNOWLEDGEMENTS": "false"}


@pytest.fixture
def example(tmp_path: Path) -> Path:
    return copy_example(tmp_path)


def mail(config: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((config.parent / "out" / "mail").glob("*.eml"))}


def parse(raw: bytes) -> EmailMessage:
    return cast(EmailMessage, message_from_bytes(raw, policy=default))


def test_two_syncs_send_each_renewal_request_once_as_an_eml_file(example: Path) -> None:
    dry = run_cli("sync", "--dry-run", "--config", str(example), "--json", env=ENV)
    assert dry.code == 0, dry.stderr
    would = {(r["reason"], r["po_number"], r["recipient"]) for r in dry.json()["would_request"]}
    assert would == {
        ("term_end", "ACME-PO-1001", "ap@acme.example"),
        ("consumed", "4500012345", "rechnungseingang@globex.example"),
    }
    assert [r["customer_ref"] for r in dry.json()["would_not_mail"]] == ["CUST-INITECH"]
    assert mail(example) == {}  # a dry run sends nothing

    first = run_cli("sync", "--config", str(example), "--json", env=ENV)
    assert first.code == 0, first.stderr
    summary = first.json()
    assert (summary["renewal_requests_planned"], summary["messages_sent"]) == (2, 2)
    assert summary["renewal_requests_unaddressed"] == 1 and "CUST-INITECH" in first.stderr
    sent = mail(example)
    second = run_cli("sync", "--config", str(example), "--json", env=ENV)
    assert second.code == 0, second.stderr
    assert (second.json()["renewal_requests_planned"], second.json()["messages_sent"]) == (0, 0)
    assert mail(example) == sent and len(sent) == 2

    acme = [parse(raw) for raw in sent.values() if b"ACME-PO-1001" in raw]
    assert len(acme) == 1
    (message,) = acme
    (name,) = [n for n, raw in sent.items() if b"ACME-PO-1001" in raw]
    assert message["Message-ID"] == f"<{name.removesuffix('.eml')}@po-connector.cloudlytics.example>"
    assert message["To"] == "ap@acme.example" and message["Reply-To"] == "po@cloudlytics.example"
    assert "ACME-PO-1001" in message["Subject"]
    body = message.get_content()
    for needed in ("2027-01-01 to 2027-01-31", "2000.00 USD", "PLAN-PRO", "50", "CUST-ACME SUB-ACME-PRO"):
        assert needed in body, needed
    assert "send the purchase order to po@cloudlytics.example" in body


def test_status_mail_list_and_report_show_what_was_asked_when(example: Path) -> None:
    assert run_cli("sync", "--config", str(example), "-q", env=ENV).code == 0
    listed = run_cli("mail", "list", "--config", str(example), "--json").json()
    assert sorted((r["state"], r["reason"], r["customer_ref"]) for r in listed) == [
        ("sent", "consumed", "CUST-GLOBEX"),
        ("sent", "term_end", "CUST-ACME"),
        ("unaddressed", "missing_po", "CUST-INITECH"),
    ]
    assert all(r["sent_at"] for r in listed if r["state"] == "sent")
    status = run_cli("status", "--config", str(example), "--json").json()
    assert status["mail"]["outbox"] == {"sent": 2, "unaddressed": 1}
    text = run_cli("status", "--config", str(example)).stdout
    assert text.count("ASKED ") == 2 and "MAIL NO ADDRESS" in text
    report = run_cli("report", "--config", str(example), "--format", "json").json()
    assert len(report["renewal_requests"]) == 3
    actions = [a for a in report["action_needed"] if a["kind"].startswith("mail_")]
    assert [(a["kind"], a["customer"]) for a in actions] == [("mail_unaddressed", "Initech LLC")]
    html = run_cli("report", "--config", str(example), "--format", "html").stdout
    assert '<section id="requests"><h2>Renewal requests</h2>' in html and "ap@acme.example" in html
    (acme,) = [r for r in listed if r["customer_ref"] == "CUST-ACME"]
    shown = run_cli("mail", "show", str(acme["id"]), "--config", str(example))
    assert shown.code == 0 and acme["message_id"] in shown.stdout
    refused = run_cli("mail", "resend", str(acme["id"]), "--yes", "--config", str(example))
    assert refused.code == 2 and "only an uncertain or dead message" in refused.stderr
    missing = run_cli("mail", "mark-sent", "999", "--config", str(example))
    assert missing.code == 2 and missing.stderr.startswith("po-connector: not found:")


def test_an_ap_address_added_later_mails_the_held_request_once(example: Path) -> None:
    assert run_cli("sync", "--config", str(example), "-q", env=ENV).code == 0
    before = mail(example)
    customers = example.parent / "examples" / "customers.toml"
    text = customers.read_text(encoding="utf-8").replace(
        'buyer_ids = ["initech.example"]\n',
        'buyer_ids = ["initech.example"]\nap_email = "ap@initech.example"\n',
    )
    customers.write_text(text, encoding="utf-8")
    for _ in range(2):
        again = run_cli("sync", "--config", str(example), "--json", env=ENV)
        assert again.code == 0, again.stderr
    assert again.json()["renewal_requests_unaddressed"] == 0
    new = {name: raw for name, raw in mail(example).items() if name not in before}
    assert len(new) == 1 and len(mail(example)) == 3
    (initech,) = [parse(raw) for raw in new.values()]
    assert initech["To"] == "ap@initech.example"
    assert "2026-11-01 to 2026-11-30" in initech.get_content() and "400.00 USD" in initech.get_content()


def test_a_broken_template_is_a_config_error_that_never_stops_the_invoices(example: Path) -> None:
    templates = example.parent / "mail-templates"
    templates.mkdir()
    (templates / "missing_po.txt").write_text("Subject: PO for $perod_start\n\nhello\n", encoding="utf-8")
    config = example.read_text(encoding="utf-8").replace(
        '# templates_dir = "mail-templates"', 'templates_dir = "mail-templates"'
    )
    example.write_text(config, encoding="utf-8")
    result = run_cli("sync", "--config", str(example), "--json", env=ENV)
    assert result.code == 2
    summary = result.json()
    assert summary["invoices_pushed"] == 7 and summary["config_errors"] == 1
    assert (
        "unknown placeholder $perod_start" in summary["errors"][0]
        and "missing_po.txt" in summary["errors"][0]
    )
    assert mail(example) == {}
