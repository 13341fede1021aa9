"""The e-mail policy messages are read with: the default policy's answers, at less cost."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser

from adapters.mail_messages import MESSAGE_POLICY


def message(n: int) -> bytes:
    return (
        f"From: Buyer {n} <ap{n}@buyer.example>\r\n"
        f"To: orders@vendor.example\r\n"
        f"Subject: PO {n}\r\n"
        f"Date: Mon, {1 + n % 28:02d} Dec 2026 09:{n % 60:02d}:00 +0100\r\n"
        f"Message-ID: <po-{n}@buyer.example>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n'
        "\r\n--b1\r\n"
        'Content-Type: text/csv; charset="utf-8"; name="po.csv"\r\n'
        'Content-Disposition: attachment; filename="po.csv"\r\n'
        "\r\nPO Number,SKU\r\n1,PLAN-PRO\r\n--b1--\r\n"
    ).encode()


def test_a_header_class_is_made_once_however_many_messages_are_read() -> None:
    kinds: set[type] = set()
    for n in range(200):
        parsed = BytesParser(policy=MESSAGE_POLICY).parsebytes(message(n))
        for part in parsed.walk():
            kinds.update(type(value) for _, value in part.items())
    # One class per kind of header (address, date, unique, MIME version, content type and
    # disposition, message id...), not one per header read.
    assert len(kinds) <= 12


def test_headers_read_as_the_default_policy_reads_them() -> None:
    raw = message(7)
    ours = BytesParser(policy=MESSAGE_POLICY).parsebytes(raw)
    stock = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert [(k, str(v)) for k, v in ours.items()] == [(k, str(v)) for k, v in stock.items()]
    assert ours["Date"].datetime == stock["Date"].datetime
    assert ours["From"].addresses == stock["From"].addresses
    ours_part, stock_part = list(ours.walk())[1], list(stock.walk())[1]
    assert ours_part.get_filename() == stock_part.get_filename() == "po.csv"
    assert ours_part.get_content_type() == "text/csv"
    assert ours_part.get_content_charset() == "utf-8"
