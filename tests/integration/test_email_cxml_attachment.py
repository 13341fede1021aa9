"""cXML OrderRequests that arrive as e-mail attachments in a folder of .eml files."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from adapters.email_csv import EmailCsvConfig, EmailCsvSource
from connector.ports import AdapterContext, PullContext

DATA = Path(__file__).resolve().parents[1] / "data" / "cxml"


def _message(folder: Path, attachment: bytes, message_id: str) -> None:
    message = EmailMessage()
    message["From"] = "orders@buyer.example"
    message["To"] = "po@vendor.example"
    message["Subject"] = "Purchase order"
    message["Date"] = "Mon, 02 Nov 2026 10:00:00 +0000"
    message["Message-ID"] = message_id
    message.set_content("Our order is attached.")
    message.add_attachment(attachment, maintype="text", subtype="xml", filename="order.xml")
    (folder / f"{message_id.strip('<>')}.eml").write_bytes(bytes(message))


def test_a_cxml_attachment_becomes_a_po_once(tmp_path: Path) -> None:
    _message(tmp_path, (DATA / "order-new.xml").read_bytes(), "<m1@buyer.example>")
    source = EmailCsvSource(
        EmailCsvConfig(name="inbox", type="email-csv", maildir=tmp_path), AdapterContext()
    )
    batches = list(source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))))
    records = [r for b in batches for r in b.records]
    assert len(records) == 1 and records[0].po.lines
    assert all(not b.rejections for b in batches)
    keys = {b.input_key for b in batches if b.input_key}
    again = list(
        source.pull(PullContext(cursor=None, started_at=datetime.now(UTC), is_processed=keys.__contains__))
    )
    assert [r for b in again for r in b.records] == []


def test_an_xxe_attachment_is_refused_and_the_rest_goes_on(tmp_path: Path) -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE cXML [<!ENTITY x SYSTEM "file:///etc/passwd">]><cXML>&x;</cXML>'
    _message(tmp_path, evil, "<m2@buyer.example>")
    _message(tmp_path, (DATA / "order-new.xml").read_bytes(), "<m3@buyer.example>")
    source = EmailCsvSource(
        EmailCsvConfig(name="inbox", type="email-csv", maildir=tmp_path), AdapterContext()
    )
    batches = list(source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))))
    problems = [p for b in batches for p in b.rejections]
    assert len(problems) == 1 and "entit" in problems[0].reason.lower()
    assert len([r for b in batches for r in b.records]) == 1


UBL = Path(__file__).resolve().parents[1] / "data" / "ubl"


def test_ubl_order_and_order_change_attachments_become_two_revisions(tmp_path: Path) -> None:
    _message(tmp_path, (UBL / "order.xml").read_bytes(), "<u1@buyer.example>")
    _message(tmp_path, (UBL / "order-change.xml").read_bytes(), "<u2@buyer.example>")
    source = EmailCsvSource(
        EmailCsvConfig(name="inbox", type="email-csv", maildir=tmp_path), AdapterContext()
    )
    batches = list(source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))))
    assert [p for b in batches for p in b.rejections] == []
    pos = sorted((r.po for b in batches for r in b.records), key=lambda po: po.revision)
    assert [(po.external_id, po.revision, len(po.lines)) for po in pos] == [
        ("7300010000001/PO-UBL-1001", 1, 2),
        ("7300010000001/PO-UBL-1001", 2, 2),
    ]
    assert all(b.input_key and b.input_key.startswith("<u") for b in batches if b.records)


def test_a_ubl_cancellation_attachment_is_refused_naming_the_order(tmp_path: Path) -> None:
    _message(tmp_path, (UBL / "order-cancellation.xml").read_bytes(), "<u3@buyer.example>")
    source = EmailCsvSource(
        EmailCsvConfig(name="inbox", type="email-csv", maildir=tmp_path), AdapterContext()
    )
    batches = list(source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))))
    [problem] = [p for b in batches for p in b.rejections]
    assert (problem.field, problem.value) == ("cac:OrderReference/cbc:ID", "PO-UBL-1001")
    assert problem.document.endswith("#order.xml")
