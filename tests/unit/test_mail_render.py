"""Renewal request templates (bundled and overridden) and the messages rendered from them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from email import message_from_string
from email.policy import default
from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.mail_render import build_message, load_template, message_id_for, parse_template
from connector.model import BillingLine, Money
from connector.renewal_requests import TEMPLATES, Cycle, RenewalRequest
from connector.renewals import template_values
from state.messages import dedupe_key
from tests.support.factories import make_po

WHEN = datetime(2026, 12, 7, 9, 30, tzinfo=UTC)


def request(kind: str = "term_end") -> RenewalRequest:
    po = make_po("ACME-PO-1001")
    line = BillingLine(
        sku="PLAN-PRO",
        description="Pro plan seats",
        quantity=Decimal(50),
        unit_price=Money.of("40.00", "USD"),
    )
    cycle = Cycle(date(2027, 1, 1), date(2027, 1, 31), (line,), Money.of("2000.00", "USD"), ("SUB-ACME-PRO",))
    return RenewalRequest(
        subject_key=po.key,
        reason="term_end:2026-12-31",
        kind=kind,
        customer_ref="CUST-ACME",
        cycle=cycle,
        why="ACME-PO-1001 term ends 2026-12-31",
        po=po if kind != "missing_po" else None,
        last_cycle=cycle,
    )


def values(kind: str = "term_end") -> dict[str, str]:
    found = template_values(
        request(kind),
        customer_name="Acme Corp",
        po_inbox="po@vendor.example",
        supplier_name="Cloudlytics Inc.",
        consumed=Decimal("1100.00"),
    )
    return {**found, "request_id": "REQ-0123ABCD"}


@pytest.mark.parametrize("kind", sorted(TEMPLATES))
def test_each_bundled_template_says_what_the_next_cycle_needs(kind: str) -> None:
    subject, body = load_template(TEMPLATES[kind], None).render(values(kind))
    assert "REQ-0123ABCD" in subject and "$" not in subject + body
    for needed in (
        "2027-01-01",
        "2027-01-31",
        "2000.00 USD",
        "PLAN-PRO",
        "50",
        "po@vendor.example",
        "CUST-ACME SUB-ACME-PRO",
    ):
        assert needed in body, needed
    if kind == "consumed":
        assert "1100.00 USD" in body and "100.00 USD" in body and "91.7%" in subject


def test_a_template_in_the_configured_folder_wins(tmp_path: Path) -> None:
    (tmp_path / "renewal_term_end.txt").write_text(
        "Subject: PO bitte: $po_number\n\nHallo $customer_name, $$5 Rabatt bis $term_end.\n", encoding="utf-8"
    )
    template = load_template("renewal_term_end", tmp_path)
    assert template.origin == str(tmp_path / "renewal_term_end.txt")
    assert template.render(values()) == (
        "PO bitte: ACME-PO-1001",
        "Hallo Acme Corp, $5 Rabatt bis 2026-12-31.\n",
    )
    # The others still come bundled.
    assert load_template("missing_po", tmp_path).origin == "(bundled) missing_po.txt"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Hello $customer_name\n", "first line must be 'Subject: ...'"),
        ("Subject: \n\nbody\n", "first line must be 'Subject: ...'"),
        ("Subject: PO\nbody right away\n", "an empty line must follow the subject line"),
    ],
)
def test_a_malformed_template_is_a_config_error_naming_the_file(text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=r"my\.txt") as caught:
        parse_template(text, "my.txt")
    assert problem in str(caught.value)


def test_an_unknown_placeholder_or_a_stray_dollar_is_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown placeholder \$po_nummer .*\$po_number"):
        parse_template("Subject: $po_nummer\n\nbody\n", "x.txt").render(values())
    with pytest.raises(ConfigError, match=r"write \$\$ for a dollar sign"):
        parse_template("Subject: PO\n\nyou owe $ 5\n", "x.txt").render(values())


def test_a_line_break_in_a_value_never_reaches_the_subject_header() -> None:
    evil = {**values(), "po_number": "PO-1\r\nBcc: victim@example.com"}
    subject, _ = parse_template("Subject: PO $po_number\n\n$po_number\n", "x.txt").render(evil)
    assert "\n" not in subject and "\r" not in subject
    text = build_message(
        sender="billing@vendor.example",
        sender_name="",
        recipient="ap@acme.example",
        reply_to="billing@vendor.example",
        subject=subject,
        body="hi\n",
        message_id="<x@po-connector.vendor.example>",
        date=WHEN,
    )
    assert message_from_string(text, policy=default)["Bcc"] is None


def test_the_message_is_7bit_crlf_with_a_stable_message_id_and_round_trips() -> None:
    key = dedupe_key("default", "renewal_request", "default/inbox/ACME-PO-1001", "term_end:2026-12-31")
    message_id = message_id_for(key, "vendor.example")
    assert message_id == f"<{key}@po-connector.vendor.example>"
    assert key == dedupe_key(
        "default", "renewal_request", "default/inbox/ACME-PO-1001", "term_end:2026-12-31"
    )
    body = "Grüße aus München: 2000.00 € bis 2027-01-31\n"
    text = build_message(
        sender="billing@vendor.example",
        sender_name="Café Billing",
        recipient="ap@acme.example",
        reply_to="po@vendor.example",
        subject="Bestellung nötig",
        body=body,
        message_id=message_id,
        date=WHEN,
    )
    assert text.isascii() and "\r\n" in text and "\n" not in text.replace("\r\n", "")
    parsed = message_from_string(text, policy=default)
    assert parsed["Message-ID"] == message_id
    assert parsed["Subject"] == "Bestellung nötig"
    assert parsed["From"].addresses[0].display_name == "Café Billing"
    assert parsed["Reply-To"] == "po@vendor.example" and parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["Date"].datetime == WHEN
    assert parsed.get_content().replace("\r\n", "\n") == body
