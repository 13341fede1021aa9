"""The conformance kit applied to the email-csv PO source, on a folder of .eml files."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from adapters.email_csv import EmailCsvConfig, EmailCsvSource
from connector.ports import AdapterContext
from connector.testing import Rig, SourceFixture, SourceKit, not_applicable

HEADER = "PO Number,SKU,Quantity,Unit Price,Currency\n"


@dataclass
class Inbox:
    """A folder of messages and the number of the next one."""

    folder: Path
    sent: int = 0

    def deliver(self, csv_text: str) -> None:
        self.sent += 1
        mail = EmailMessage()
        mail["From"] = "buyer@acme.example"
        mail["To"] = "orders@vendor.example"
        mail["Subject"] = f"PO {self.sent}"
        mail["Date"] = format_datetime(datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=self.sent))
        mail["Message-ID"] = f"<kit-{self.sent}@acme.example>"
        mail.set_content("See attachment.\n")
        mail.add_attachment(csv_text, subtype="csv", filename="po.csv")
        (self.folder / f"message-{self.sent:04d}.eml").write_bytes(mail.as_bytes())


@contextmanager
def start(rig: Rig[Any]) -> Iterator[Inbox]:
    folder = rig.path / "inbox"
    folder.mkdir()
    yield Inbox(folder)


def build(rig: Rig[Inbox]) -> EmailCsvSource:
    config = EmailCsvConfig(name="inbox", type="email-csv", maildir=rig.env.folder)
    return EmailCsvSource(config, AdapterContext(tenant=rig.tenant, base_dir=rig.path))


def seed(rig: Rig[Inbox], count: int) -> None:
    for _ in range(count):
        rig.env.deliver(f"{HEADER}KIT-{rig.env.sent + 1},PLAN-PRO,2,10.00,USD\n")


def malformed(rig: Rig[Inbox]) -> None:
    rig.env.deliver(f"{HEADER}KIT-BAD-{rig.env.sent + 1},PLAN-PRO,two,10.00,USD\n")


class TestEmailCsvConformance(SourceKit):
    fixture = SourceFixture(
        adapter=EmailCsvSource,
        entry_point="email-csv",
        start=start,
        build=build,
        seed=seed,
        seed_count=6,
        malformed=malformed,
        bad_credentials=not_applicable("a folder of messages has no credentials (IMAP is tested apart)"),
        inject=not_applicable("a folder has no network requests to fail"),
        secrets=not_applicable("a folder source holds no secret"),
    )
