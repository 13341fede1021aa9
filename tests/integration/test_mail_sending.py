"""Renewal requests sent exactly once to a REAL SMTP server (aiosmtpd on 127.0.0.1), and as files.

Plain, STARTTLS and implicit TLS with a throw-away certificate, AUTH with the password from the
environment or a file; a server that drops the connection after DATA (uncertain: never sent
again by itself, same Message-ID when support resends), 451 then OK (retried once), 550 (dead),
nobody listening (waits). Every client step is bounded by the transport's 5 s timeout.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config
from connector.mail_render import build_message, message_id_for
from connector.mail_sending import send_due
from connector.mail_transport import FilesTransport
from connector.model import utcnow
from connector.runtime import Connector, RunContext
from state import messages
from tests.support.smtp import PASSWORD, USERNAME, SmtpServer, free_port, smtp_server


def make_app(tmp_path: Path, **mail: Any) -> Connector:
    settings = {"from_address": "billing@vendor.example", "timeout": 5, **mail}
    url = f"sqlite:///{tmp_path / 'state.db'}"
    lines = ["[state]", f"url = {json.dumps(url)}", "[mail]"]
    lines += [
        f"{key} = {json.dumps(str(value) if isinstance(value, Path) else value)}"
        for key, value in settings.items()
    ]
    (tmp_path / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return Connector(load_config(tmp_path / "config.toml"))


def smtp_app(tmp_path: Path, server: SmtpServer, **mail: Any) -> Connector:
    options: dict[str, Any] = {
        "transport": "smtp",
        "host": server.host,
        "port": server.port,
        "security": "none",
    }
    if server.ca_file is not None:
        options["ca_file"] = server.ca_file
    return make_app(tmp_path, **{**options, **mail})


def plan(
    app: Connector, po: str = "ACME-PO-1001", recipient: str = "ap@acme.example"
) -> messages.OutgoingMessage:
    key = messages.dedupe_key(app.tenant, "renewal_request", f"default/inbox/{po}", "term_end:2026-12-31")
    message_id = message_id_for(key, "vendor.example")
    text = build_message(
        sender="billing@vendor.example",
        sender_name="Vendor Billing",
        recipient=recipient,
        reply_to="po@vendor.example",
        subject=f"Purchase order needed: {po} ends 2026-12-31",
        body=f"Please send a PO for {po}.\n.leading dot line stays\n",
        message_id=message_id,
        date=utcnow(),
    )
    planned = messages.OutgoingMessage(
        tenant=app.tenant,
        kind="renewal_request",
        subject_key=f"default/inbox/{po}",
        reason="term_end:2026-12-31",
        customer_ref="CUST-ACME",
        po_number=po,
        recipient=recipient,
        subject=f"Purchase order needed: {po}",
        message_id=message_id,
        message=text,
        details={},
    )
    with app.engine.begin() as conn:
        assert messages.plan(conn, planned, utcnow()) == "planned"
    return planned


def send(app: Connector, clock: Callable[[], datetime] = utcnow) -> RunContext:
    with app.run("sync") as run:
        send_due(app, run, clock=clock)
    return run


def states(app: Connector) -> list[tuple[str, int]]:
    with app.connect() as conn:
        return [(row["state"], row["attempts"]) for row in messages.list_messages(conn, app.tenant)]


def later(days: float) -> Callable[[], datetime]:
    return lambda: utcnow() + timedelta(days=days)


def test_plain_smtp_delivers_the_message_once_under_its_message_id(tmp_path: Path) -> None:
    with smtp_server(tmp_path) as server:
        app = smtp_app(tmp_path, server)
        planned = plan(app)
        run = send(app)
        assert run.counts["messages_sent"] == 1 and run.errors == []
        send(app, later(1))
        (received,) = server.recorder.messages()
    assert received["Message-ID"] == planned.message_id
    assert received["To"] == "ap@acme.example" and received["Reply-To"] == "po@vendor.example"
    assert ".leading dot line stays" in received.get_content()  # dot-stuffed on the wire, not lost
    assert server.recorder.rcpt_attempts == ["ap@acme.example"]
    assert states(app) == [("sent", 1)]


def test_starttls_with_auth_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", PASSWORD)
    with smtp_server(tmp_path, security="starttls", auth=True) as server:
        app = smtp_app(
            tmp_path, server, security="starttls", username=USERNAME, password_env="TEST_SMTP_PASSWORD"
        )
        plan(app)
        run = send(app)
        assert run.errors == [] and run.counts["messages_sent"] == 1
        assert server.recorder.logins == [USERNAME] and len(server.recorder.received) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")  # implicit TLS is TLS
def test_implicit_tls_with_auth_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "smtp-password").write_text(PASSWORD + "\n", encoding="utf-8")
    with smtp_server(tmp_path, security="ssl", auth=True) as server:
        app = smtp_app(tmp_path, server, security="ssl", username=USERNAME, password_file="smtp-password")
        plan(app)
        assert send(app).counts["messages_sent"] == 1
        assert server.recorder.logins == [USERNAME] and len(server.recorder.received) == 1


def test_refused_credentials_are_a_config_error_and_the_message_waits_untried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "wrong-Secret-0000")
    with smtp_server(tmp_path, security="starttls", auth=True) as server:
        app = smtp_app(
            tmp_path, server, security="starttls", username=USERNAME, password_env="TEST_SMTP_PASSWORD"
        )
        plan(app)
        run = send(app)
        assert server.recorder.received == []
    assert run.counts["config_errors"] == 1
    assert "refused the credentials" in run.errors[0] and "wrong-Secret-0000" not in " ".join(run.errors)
    assert states(app) == [("planned", 0)]


def test_an_untrusted_certificate_is_a_config_error(tmp_path: Path) -> None:
    with smtp_server(tmp_path, security="ssl") as server:
        app = make_app(tmp_path, transport="smtp", host=server.host, port=server.port, security="ssl")
        plan(app)
        run = send(app)
        assert server.recorder.received == []
    assert run.counts["config_errors"] == 1 and "mail.ca_file" in run.errors[0]
    assert states(app) == [("planned", 0)]


def test_a_connection_lost_after_data_is_uncertain_and_never_sent_twice(tmp_path: Path) -> None:
    with smtp_server(tmp_path, behaviour="drop_after_data") as server:
        app = smtp_app(tmp_path, server)
        planned = plan(app)
        run = send(app)
        assert run.counts["messages_uncertain"] == 1 and "uncertain" in run.errors[0]
        for days in (0, 1, 30):  # later runs: no lookup exists for SMTP, so nothing is re-sent
            again = send(app, later(days))
            assert again.counts["messages_sent"] == 0
        assert len(server.recorder.received) == 1  # the server queued it once
        assert states(app) == [("uncertain", 1)]
        with app.connect() as conn:
            (row,) = messages.list_messages(conn, app.tenant)
        assert "after the message was sent" in row["last_error"]
        # Support looked and decided it did not arrive: the same bytes, the same Message-ID.
        server.recorder.behaviour = "accept"
        with app.engine.begin() as conn:
            assert messages.resend(conn, app.tenant, row["id"], utcnow())
        assert send(app).counts["messages_sent"] == 1
        first, second = server.recorder.messages()
    assert first["Message-ID"] == second["Message-ID"] == planned.message_id
    assert server.recorder.received[0] == server.recorder.received[1]


@pytest.mark.parametrize("behaviour", ["451_then_ok", "451_data_then_ok"])
def test_a_451_is_retried_once_in_a_later_run(tmp_path: Path, behaviour: Any) -> None:
    with smtp_server(tmp_path, behaviour=behaviour) as server:
        app = smtp_app(tmp_path, server)
        plan(app)
        first = send(app)
        assert first.counts["messages_sent"] == 0 and first.counts["messages_waiting"] == 1
        assert states(app) == [("planned", 1)]
        assert send(app).counts["messages_sent"] == 0  # not due yet: backoff
        assert send(app, later(1)).counts["messages_sent"] == 1
        assert len(server.recorder.received) == 1
        attempts = (
            server.recorder.rcpt_attempts if behaviour == "451_then_ok" else [server.recorder.data_attempts]
        )
        assert len(attempts) == 2 or attempts == [2]
    assert states(app) == [("sent", 2)]


def test_a_550_goes_dead_with_the_servers_answer(tmp_path: Path) -> None:
    with smtp_server(tmp_path, behaviour="550_recipient") as server:
        app = smtp_app(tmp_path, server)
        plan(app)
        run = send(app)
        send(app, later(1))
        assert server.recorder.rcpt_attempts == ["ap@acme.example"]  # never tried again
    assert run.counts["messages_dead"] == 1 and "550" in run.errors[0]
    with app.connect() as conn:
        (row,) = messages.list_messages(conn, app.tenant)
    assert row["state"] == "dead" and "User unknown" in row["last_error"]


def test_nobody_listening_waits_and_stops_this_runs_sending(tmp_path: Path) -> None:
    app = make_app(tmp_path, transport="smtp", host="127.0.0.1", port=free_port(), security="none")
    plan(app, "ACME-PO-1001")
    plan(app, "ACME-PO-1002")
    run = send(app)
    assert run.counts["messages_waiting"] == 2 and run.errors == []
    assert states(app) == [("planned", 1), ("planned", 0)]  # the second was not tried


def test_files_a_crash_after_writing_is_resolved_by_the_message_id_not_a_second_file(tmp_path: Path) -> None:
    app = make_app(tmp_path, transport="files", directory="mail")
    planned = plan(app)
    transport = FilesTransport(tmp_path / "mail")
    with app.engine.begin() as conn:  # a run claims and writes, then dies before recording
        item = messages.claim_next(conn, tenant=app.tenant, owner="dead-run", now=utcnow(), lease_seconds=10)
    assert item is not None
    transport.send(item, "billing@vendor.example")
    run = send(app, later(1))
    assert run.counts["messages_sent"] == 0 and states(app) == [("sent", 1)]
    (written,) = (tmp_path / "mail").glob("*.eml")
    assert written.read_bytes() == planned.message.encode("ascii")
    assert written.name == planned.message_id.strip("<>").split("@")[0] + ".eml"


def test_files_an_uncertain_message_not_found_is_written_once(tmp_path: Path) -> None:
    app = make_app(tmp_path, transport="files", directory="mail")
    plan(app)
    with app.engine.begin() as conn:
        item = messages.claim_next(conn, tenant=app.tenant, owner="dead-run", now=utcnow(), lease_seconds=10)
    assert item is not None  # the run died before it wrote anything
    assert send(app, later(1)).counts["messages_sent"] == 1
    assert send(app, later(2)).counts["messages_sent"] == 0
    assert len(list((tmp_path / "mail").glob("*.eml"))) == 1 and states(app) == [("sent", 2)]


def test_doctor_checks_the_smtp_login_without_sending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connector.doctor import run_doctor

    with smtp_server(tmp_path, security="starttls", auth=True) as server:
        monkeypatch.setenv("SMTP_PASSWORD", PASSWORD)
        smtp_app(tmp_path, server, security="starttls", username=USERNAME, password_env="SMTP_PASSWORD")
        [mail] = [f for f in run_doctor(str(tmp_path / "config.toml")) if f.subject.startswith("mail")]
        assert mail.ok and f"logged in as {USERNAME}" in mail.detail, mail.line()
        monkeypatch.setenv("SMTP_PASSWORD", "not-the-password")
        [refused] = [f for f in run_doctor(str(tmp_path / "config.toml")) if f.subject.startswith("mail")]
        assert not refused.ok and "refused the credentials" in refused.detail
        assert "not-the-password" not in refused.line()
        assert server.recorder.messages() == []  # a check sends nothing
