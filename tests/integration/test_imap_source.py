"""The email-csv source reading a real dovecot mailbox, driven by the real core (pull job, SQLite).

Each test takes its own mailbox on one dovecot per module; messages are delivered with IMAP APPEND.
"""

from __future__ import annotations

import codecs
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.email_csv import EmailCsvConfig, EmailCsvSource
from connector import jobs
from connector.config import load_config
from connector.errors import AuthenticationError, ConfigError, RetryableError
from connector.ports import AdapterContext, PullContext, SourceBatch
from connector.runtime import Connector
from state import ingest, quarantine_store
from state.tables import po_records, po_revisions, processed_inputs
from tests.support.cli import run_cli
from tests.support.dovecot import DovecotServer, dovecot, free_port  # noqa: F401  (dovecot: the fixture)
from tests.support.shared import require_service

pytestmark = pytest.mark.service

REPO = Path(__file__).resolve().parents[2]
CXML_ORDER = REPO / "tests" / "data" / "cxml" / "order-new.xml"
PASSWORD_ENV = "PO_TEST_IMAP_PASSWORD"
HEADER = "PO Number,SKU,Quantity,Unit Price,Currency\n"


def po_csv(*numbers: str, quantity: str = "1", price: str = "10.00") -> str:
    return HEADER + "".join(f"{n},PLAN-PRO,{quantity},{price},USD\n" for n in numbers)


def mail(
    *attachments: tuple[bytes | str, str],
    message_id: str,
    sender: str = "purchasing@acme.example",
    date: str = "Mon, 05 Jan 2026 09:00:00 +0000",
    content_type: tuple[str, str] = ("text", "csv"),
) -> bytes:
    """A message with the given (content, filename) attachments."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "po-inbox@example.test"
    message["Subject"] = "Purchase order"
    message["Date"] = date
    message["Message-ID"] = message_id
    message.set_content("Please find our purchase order attached.\n")
    for content, filename in attachments:
        data = content.encode() if isinstance(content, str) else content
        message.add_attachment(data, maintype=content_type[0], subtype=content_type[1], filename=filename)
    return message.as_bytes()


@pytest.fixture
def mailbox(dovecot: DovecotServer) -> str:  # noqa: F811
    return dovecot.new_mailbox()


@pytest.fixture
def password(dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    monkeypatch.setenv(PASSWORD_ENV, dovecot.password)
    return dovecot.password


def imap_block(server: DovecotServer, mailbox: str, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "tls": "none",
        "username": server.username,
        "password_env": PASSWORD_ENV,
        "mailbox": mailbox,
        "timeout": 10,
    }
    block.update(extra)
    return block


def toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_value(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)


def write_config(tmp_path: Path, imap: dict[str, Any], **source: Any) -> Path:
    lines = [
        "[state]",
        'url = "sqlite:///state.db"',
        "[log]",
        'format = "text"',
        "[[sources]]",
        'name = "mail"',
        'type = "email-csv"',
        *(f"{key} = {toml_value(value)}" for key, value in source.items()),
        "[sources.imap]",
        *(f"{key} = {toml_value(value)}" for key, value in imap.items()),
    ]
    path = tmp_path / "config.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pull(config: Path) -> dict[str, Any]:
    app = Connector(load_config(config))
    try:
        return jobs.pull(app)
    finally:
        app.engine.dispose()


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Any]:
    """Read access to the run's SQLite state (after the runs)."""
    engines: list[Any] = []

    def connect() -> Any:
        app = Connector(load_config(tmp_path / "config.toml"))
        engines.append(app.engine)
        return app.engine.connect()

    yield connect
    for engine in engines:
        engine.dispose()


def stored(state: Any) -> dict[str, dict[str, Any]]:
    """Every stored PO by number: revision count, whether it was seen again after its first run."""
    with state() as conn:
        rows = conn.execute(
            select(
                po_records.c.po_number,
                po_records.c.first_seen_at,
                po_records.c.last_seen_at,
                po_records.c.canonical_json,
                func.count(po_revisions.c.id).label("revisions"),
            )
            .join(po_revisions, po_revisions.c.po_record_id == po_records.c.id)
            .group_by(po_records.c.id)
        ).all()
    return {
        row.po_number: {
            "revisions": row.revisions,
            "seen_again": row.last_seen_at != row.first_seen_at,
            "json": row.canonical_json,
        }
        for row in rows
    }


def pos_in_state(state: Any) -> dict[str, Any]:
    with state() as conn:
        return {po.po_number: po for po in ingest.load_pos(conn, "default")}


# ---------------------------------------------------------------------------- exactly once


def test_every_message_is_processed_once_over_two_runs(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    dovecot.append(mailbox, mail((po_csv("A-1"), "a.csv"), message_id="<a@acme.example>"))
    dovecot.append(
        mailbox,
        mail((po_csv("B-1"), "b1.csv"), (po_csv("B-2"), "b2.csv"), message_id="<b@acme.example>"),
    )
    config = write_config(tmp_path, imap_block(dovecot, mailbox))

    first = pull(config)
    assert (first["pos_fetched"], first["pos_changed"], first["exit_code"]) == (3, 3, 0)
    assert dovecot.search(mailbox, "UNSEEN") == []

    dovecot.append(mailbox, mail((po_csv("C-1"), "c.csv"), message_id="<c@acme.example>"))
    second = pull(config)
    assert (second["pos_fetched"], second["pos_changed"]) == (1, 1)

    third = pull(config)
    assert third["pos_fetched"] == 0
    pos = stored(state)
    assert sorted(pos) == ["A-1", "B-1", "B-2", "C-1"]
    assert all(p["revisions"] == 1 and not p["seen_again"] for p in pos.values())
    assert dovecot.search(mailbox, "UNSEEN") == []


def test_search_all_rereads_seen_messages_but_never_reprocesses_them(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
) -> None:
    dovecot.append(mailbox, mail((po_csv("S-1"), "s.csv"), message_id="<s@x>"), flags="\\Seen")
    config = write_config(tmp_path, imap_block(dovecot, mailbox, search="ALL"))
    assert pull(config)["pos_fetched"] == 1
    assert pull(config)["pos_fetched"] == 0


def test_a_run_killed_after_the_first_attachment_commits_finishes_the_message_next_run(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    dovecot.append(
        mailbox,
        mail((po_csv("K-1"), "k1.csv"), (po_csv("K-2"), "k2.csv"), message_id="<k@acme.example>"),
    )
    config = write_config(tmp_path, imap_block(dovecot, mailbox))
    env = {PASSWORD_ENV: password, "PO_CONNECTOR_CRASH_AT": "after-source-batch"}

    crashed = run_cli("--config", str(config), "pull", env=env, cwd=tmp_path)
    assert crashed.code == 137, crashed.stderr
    assert sorted(stored(state)) == ["K-1"]
    assert len(dovecot.search(mailbox, "UNSEEN")) == 1  # not done: one attachment is left

    resumed = run_cli("--config", str(config), "pull", "--json", env={PASSWORD_ENV: password}, cwd=tmp_path)
    assert resumed.code == 0, resumed.stderr
    assert resumed.json()["pos_fetched"] == 1
    pos = stored(state)
    assert sorted(pos) == ["K-1", "K-2"]
    assert all(p["revisions"] == 1 and not p["seen_again"] for p in pos.values())
    assert dovecot.search(mailbox, "UNSEEN") == []


def test_a_run_killed_between_commit_and_flag_flags_the_message_without_reprocessing(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    dovecot.append(mailbox, mail((po_csv("F-1"), "f.csv"), message_id="<f@acme.example>"))
    config = write_config(tmp_path, imap_block(dovecot, mailbox))
    env = {PASSWORD_ENV: password, "PO_CONNECTOR_CRASH_AT": "after-source-batch"}

    crashed = run_cli("--config", str(config), "pull", env=env, cwd=tmp_path)
    assert crashed.code == 137, crashed.stderr
    assert len(dovecot.search(mailbox, "UNSEEN")) == 1  # committed, but the flag was never set

    again = pull(config)
    assert again["pos_fetched"] == 0
    assert dovecot.search(mailbox, "UNSEEN") == []
    record = stored(state)["F-1"]
    assert (record["revisions"], record["seen_again"]) == (1, False)


# ---------------------------------------------------------------------------- bad input


def test_a_bad_row_is_quarantined_and_the_good_pos_of_the_message_kept(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    table = HEADER + "G-1,PLAN-PRO,2,10.00,USD\nG-2,PLAN-PRO,ten,10.00,USD\nG-3,PLAN-PRO,3,10.00,USD\n"
    dovecot.append(mailbox, mail((table, "mixed.csv"), message_id="<g@acme.example>"))
    config = write_config(tmp_path, imap_block(dovecot, mailbox))

    summary = pull(config)
    assert (summary["pos_fetched"], summary["quarantined"], summary["exit_code"]) == (2, 1, 0)
    assert sorted(stored(state)) == ["G-1", "G-3"]
    with state() as conn:
        [problem] = quarantine_store.list_quarantine(conn, "default")
    assert (problem["location"], problem["field"], problem["value"]) == ("row 3", "Quantity", "ten")
    assert problem["document"].endswith(f"/{mailbox};UID=1#mixed.csv")
    assert dovecot.search(mailbox, "UNSEEN") == []
    assert pull(config)["quarantined"] == 0


def test_a_message_without_an_order_attachment_is_quarantined_once_and_marked_done(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    dovecot.append(mailbox, mail(message_id="<thanks@acme.example>"))
    config = write_config(tmp_path, imap_block(dovecot, mailbox))
    assert pull(config)["quarantined"] == 1
    with state() as conn:
        [problem] = quarantine_store.list_quarantine(conn, "default")
    assert problem["reason"] == "no CSV or cXML attachment"
    assert dovecot.search(mailbox, "UNSEEN") == []


# ---------------------------------------------------------------------------- encodings


def test_a_cp1252_semicolon_decimal_comma_attachment_parses(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    table = (
        "Bestellnummer;Artikel;Beschreibung;Menge;Einzelpreis;Währung\r\n"
        "4500-1;CLD-ENT;Jahreslizenz für Müller;1;24.000,50;EUR\r\n"
        "4500-1;ADDON-SSO;Zusatz „SSO“;12;10,25;EUR\r\n"
    )
    data = table.encode("cp1252")
    dovecot.append(
        mailbox,
        mail(
            (data, "bestellung.csv"),
            message_id="<de@globex.example>",
            content_type=("application", "octet-stream"),
        ),
    )
    pull(write_config(tmp_path, imap_block(dovecot, mailbox)))
    po = pos_in_state(state)["4500-1"]
    assert [(ln.sku, ln.description, ln.quantity, ln.unit_price.amount) for ln in po.lines] == [
        ("CLD-ENT", "Jahreslizenz für Müller", Decimal("1"), Decimal("24000.50")),
        ("ADDON-SSO", "Zusatz „SSO“", Decimal("12"), Decimal("10.25")),
    ]
    assert po.currency == "EUR"


def test_utf16_tab_and_utf8_bom_attachments_with_quoted_newlines_parse(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    utf16 = ("PO Number\tSKU\tDescription\tQuantity\tUnit Price\tCurrency\r\n"
             'U-16\tPLAN-PRO\t"Zwei\r\nZeilen – ok"\t3\t12.50\tUSD\r\n').encode("utf-16")  # fmt: skip
    utf8_bom = (
        codecs.BOM_UTF8
        + (
            "PO Number,SKU,Description,Quantity,Unit Price,Currency\n"
            'U-8,PLAN-PRO,"Café, ""premium""",2,1.5,USD\n'
        ).encode()
    )
    plain = po_csv("U-0").encode()
    dovecot.append(
        mailbox,
        mail((utf16, "utf16.csv"), (utf8_bom, "bom.csv"), (plain, "plain.csv"), message_id="<enc@x>"),
    )
    assert pull(write_config(tmp_path, imap_block(dovecot, mailbox)))["pos_fetched"] == 3
    pos = pos_in_state(state)
    assert pos["U-16"].lines[0].description == "Zwei\r\nZeilen – ok"
    assert pos["U-16"].lines[0].unit_price.amount == Decimal("12.50")
    assert pos["U-8"].lines[0].description == 'Café, "premium"'
    assert pos["U-0"].lines[0].quantity == Decimal("1")


def test_a_cxml_order_request_attachment_becomes_a_po(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    dovecot.append(
        mailbox,
        mail((CXML_ORDER.read_bytes(), "order.xml"), message_id="<cxml@x>", content_type=("text", "xml")),
    )
    config = write_config(tmp_path, imap_block(dovecot, mailbox))
    summary = pull(config)
    assert (summary["pos_fetched"], summary["quarantined"]) == (1, 0)
    assert len(pos_in_state(state)) == 1
    with state() as conn:
        keys = [row.input_key for row in conn.execute(select(processed_inputs.c.input_key))]
    assert [key.split("|")[0] for key in keys] == ["<cxml@x>"]
    assert pull(config)["pos_fetched"] == 0


# ---------------------------------------------------------------------------- modes and settings


def test_move_to_processed_mailbox_mode(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    processed = f"{mailbox}-done"
    dovecot.append(mailbox, mail((po_csv("M-1"), "m1.csv"), message_id="<m1@x>"))
    dovecot.append(mailbox, mail((po_csv("M-2"), "m2.csv"), message_id="<m2@x>"))
    config = write_config(tmp_path, imap_block(dovecot, mailbox, processed_mailbox=processed, search="ALL"))

    assert pull(config)["pos_fetched"] == 2
    assert dovecot.search(mailbox) == []
    assert len(dovecot.search(processed)) == 2
    assert dovecot.search(processed, "UNSEEN") == dovecot.search(processed)  # moved, not flagged

    dovecot.append(mailbox, mail((po_csv("M-3"), "m3.csv"), message_id="<m3@x>"))
    assert pull(config)["pos_fetched"] == 1
    assert len(dovecot.search(processed)) == 3
    source = Connector(load_config(config)).sources["mail"]
    assert [r.po.po_number for r in source.fetch("M-1")] == ["M-1"]  # resync finds moved mail


def test_messages_are_read_in_date_order_so_a_revision_lands_last(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    later = mail(
        (po_csv("R-1", quantity="24"), "r.csv"), message_id="<r2@x>", date="Thu, 15 Oct 2026 12:00:00 +0000"
    )
    earlier = mail(
        (po_csv("R-1", quantity="10"), "r.csv"), message_id="<r1@x>", date="Sat, 20 Jun 2026 09:00:00 +0200"
    )
    dovecot.append(mailbox, later)  # arrives first
    dovecot.append(mailbox, earlier)
    pull(write_config(tmp_path, imap_block(dovecot, mailbox)))
    po = pos_in_state(state)["R-1"]
    assert (po.revision, po.lines[0].quantity) == (2, Decimal("24"))
    assert po.source_updated_at == datetime(2026, 10, 15, 12, 0, tzinfo=UTC)


def test_a_sender_profile_chooses_the_mapping_and_senders_the_buyer(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
    state: Any,
) -> None:
    default = (REPO / "mappings" / "csv_default.toml").read_text()
    (tmp_path / "globex.toml").write_text(default.replace('column = "PO Number"', 'column = "Auftrag"'))
    table = "Auftrag,PO Number,SKU,Quantity,Unit Price,Currency\nGX-1,IGNORED,PLAN-PRO,1,5.00,USD\n"
    dovecot.append(mailbox, mail((table, "gx.csv"), message_id="<gx@x>", sender="einkauf@de.globex.example"))
    dovecot.append(mailbox, mail((table, "ac.csv"), message_id="<ac@x>"))
    config = write_config(
        tmp_path,
        imap_block(dovecot, mailbox),
        senders={"globex.example": "GLOBEX"},
        profiles={"globex.example": "globex.toml"},
    )
    pull(config)
    pos = pos_in_state(state)
    assert sorted(pos) == ["GX-1", "IGNORED"]
    assert (pos["GX-1"].buyer_id, pos["IGNORED"].buyer_id) == ("GLOBEX", "acme.example")


def make_source(server: DovecotServer, mailbox: str, tmp_path: Path, **imap: Any) -> EmailCsvSource:
    config = EmailCsvConfig(name="mail", type="email-csv", imap=imap_block(server, mailbox, **imap))
    return EmailCsvSource(config, AdapterContext(base_dir=tmp_path))


def read_all(source: EmailCsvSource) -> list[SourceBatch]:
    batches = []
    for batch in source.pull(PullContext(cursor=None, started_at=datetime.now(UTC))):
        batches.append(batch)
        if batch.after_commit:
            batch.after_commit()
    return batches


@pytest.mark.parametrize("tls", ["starttls", "ssl"])
def test_tls_modes_read_the_mailbox_with_a_private_ca(
    tls: str,
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    password: str,
) -> None:
    require_service(dovecot.ca_file is not None, "openssl is not installed: apt-get install openssl")
    shutil.copy(dovecot.ca_file, tmp_path / "ca.pem")
    port = dovecot.ssl_port if tls == "ssl" else dovecot.port
    dovecot.append(mailbox, mail((po_csv("T-1"), "t.csv"), message_id="<t@x>"))
    source = make_source(dovecot, mailbox, tmp_path, tls=tls, port=port, ca_file="ca.pem")
    assert [r.po.po_number for b in read_all(source) for r in b.records] == ["T-1"]
    untrusted = make_source(dovecot, mailbox, tmp_path, tls=tls, port=port)
    with pytest.raises(ConfigError, match="not trusted"):
        read_all(untrusted)


def test_a_refused_login_is_an_authentication_error_that_hides_the_password(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    mailbox: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "wrong-Password-123")
    source = make_source(dovecot, mailbox, tmp_path)
    with pytest.raises(AuthenticationError) as caught:
        read_all(source)
    assert "wrong-Password-123" not in str(caught.value)
    assert dovecot.username in str(caught.value)


def test_an_unknown_mailbox_is_a_config_error(
    tmp_path: Path,
    dovecot: DovecotServer,  # noqa: F811
    password: str,
) -> None:
    with pytest.raises(ConfigError, match="no-such-box"):
        read_all(make_source(dovecot, "no-such-box", tmp_path))


def test_a_server_that_does_not_answer_is_retryable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PASSWORD_ENV, "irrelevant")
    config = EmailCsvConfig(
        name="mail",
        type="email-csv",
        imap={
            "host": "127.0.0.1",
            "port": free_port(),
            "tls": "none",
            "username": "u",
            "password_env": PASSWORD_ENV,
        },
    )
    with pytest.raises(RetryableError, match="cannot connect"):
        read_all(EmailCsvSource(config, AdapterContext(base_dir=tmp_path)))
