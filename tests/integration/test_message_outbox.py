"""The message outbox on real SQLite and PostgreSQL: planned once, each transition guarded."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError

from state import messages
from state.tables import outgoing_messages
from tests.support.state_engines import DATABASES, migrated_engine

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    yield from migrated_engine(request, tmp_path)


def message(
    subject_key: str = "default/inbox/ACME-PO-1001",
    reason: str = "term_end:2026-12-31",
    *,
    recipient: str = "ap@acme.example",
    body: str = "please send a PO",
    tenant: str = "default",
) -> messages.OutgoingMessage:
    key = messages.dedupe_key(tenant, "renewal_request", subject_key, reason)
    return messages.OutgoingMessage(
        tenant=tenant,
        kind="renewal_request",
        subject_key=subject_key,
        reason=reason,
        customer_ref="CUST-ACME",
        po_number="ACME-PO-1001",
        recipient=recipient,
        subject="Purchase order needed",
        message_id=f"<{key}@po-connector.vendor.example>",
        message=f"To: {recipient}\r\n\r\n{body}\r\n" if recipient else "",
        details={"period_start": "2027-01-01"},
    )


def rows(engine: Engine) -> list[dict[str, object]]:
    with engine.connect() as conn:
        return messages.list_messages(conn, "default")


def claim(engine: Engine, now: datetime = NOW, owner: str = "run-1") -> messages.ClaimedMessage | None:
    with engine.begin() as conn:
        return messages.claim_next(conn, tenant="default", owner=owner, now=now, lease_seconds=60)


def test_a_request_is_planned_once_however_often_its_reason_is_seen(engine: Engine) -> None:
    with engine.begin() as conn:
        assert messages.plan(conn, message(), NOW) == "planned"
        assert messages.plan(conn, message(), NOW) == "unchanged"
        assert messages.plan(conn, message(reason="consumed:2000.00"), NOW) == "planned"
        assert messages.plan(conn, message(tenant="other"), NOW) == "planned"
    assert len(rows(engine)) == 2  # the other tenant's row is its own
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(outgoing_messages)).scalar_one() == 3


def test_the_dedupe_key_is_unique_in_the_database(engine: Engine) -> None:
    with engine.begin() as conn:
        messages.plan(conn, message(), NOW)
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            outgoing_messages.insert().values(
                dedupe_key=message().dedupe_key,
                tenant="default",
                kind="renewal_request",
                subject_key="x",
                reason="y",
                customer_ref="C",
                po_number="",
                recipient="a@b.example",
                subject="s",
                message_id="<other@x.example>",
                message="m",
                details_json="{}",
                state="planned",
                attempts=0,
                next_attempt_at=NOW,
                created_at=NOW,
                updated_at=NOW,
            )
        )


def test_a_sent_message_is_never_rewritten_or_planned_again(engine: Engine) -> None:
    with engine.begin() as conn:
        messages.plan(conn, message(), NOW)
    item = claim(engine)
    assert item is not None and item.attempts == 1
    with engine.begin() as conn:
        assert messages.mark_sent(conn, item.id, NOW)
        assert (
            messages.plan(conn, message(body="other words", recipient="new@acme.example"), NOW) == "unchanged"
        )
        assert messages.withdraw_unjustified(conn, "default", "renewal_request", set(), NOW, "gone") == []
    (row,) = rows(engine)
    assert (row["state"], row["recipient"]) == ("sent", "ap@acme.example")
    assert claim(engine, NOW + timedelta(days=1)) is None


def test_an_unaddressed_request_is_kept_and_planned_when_an_address_is_known(engine: Engine) -> None:
    with engine.begin() as conn:
        assert messages.plan(conn, message(recipient=""), NOW) == "unaddressed"
        assert messages.plan(conn, message(recipient=""), NOW) == "unchanged"
    assert claim(engine) is None
    with engine.begin() as conn:
        assert messages.plan(conn, message(), NOW) == "replanned"
    item = claim(engine)
    assert item is not None and item.recipient == "ap@acme.example"


def test_a_planned_message_whose_reason_is_gone_is_withdrawn_and_comes_back(engine: Engine) -> None:
    with engine.begin() as conn:
        messages.plan(conn, message(), NOW)
        keep = {message(reason="other").dedupe_key}
        assert len(messages.withdraw_unjustified(conn, "default", "renewal_request", keep, NOW, "gone")) == 1
    assert claim(engine) is None
    with engine.begin() as conn:
        assert messages.plan(conn, message(), NOW) == "replanned"
    assert claim(engine) is not None


def test_an_uncertain_message_is_never_claimed_until_resolved(engine: Engine) -> None:
    with engine.begin() as conn:
        messages.plan(conn, message(), NOW)
    item = claim(engine)
    assert item is not None
    with engine.begin() as conn:
        assert messages.mark_uncertain(conn, item.id, "run-1", "connection lost after DATA", NOW)
        assert messages.plan(conn, message(body="changed"), NOW) == "unchanged"
    for later in (NOW, NOW + timedelta(days=1), NOW + timedelta(days=30)):
        assert claim(engine, later) is None
    with engine.begin() as conn:
        assert messages.resend(conn, "default", item.id, NOW)
    again = claim(engine)
    assert again is not None and again.message_id == item.message_id and again.message == item.message


def test_a_sender_that_stopped_mid_send_leaves_the_row_uncertain(engine: Engine) -> None:
    with engine.begin() as conn:
        messages.plan(conn, message(), NOW)
    item = claim(engine)
    assert item is not None
    assert claim(engine, NOW + timedelta(seconds=30), owner="run-2") is None  # lease still held
    assert claim(engine, NOW + timedelta(seconds=61), owner="run-2") is None  # expired: uncertain
    (row,) = rows(engine)
    assert row["state"] == "uncertain" and "stopped" in str(row["last_error"])
    # The owner's late outcome still counts: it knows the server accepted the message.
    with engine.begin() as conn:
        assert not messages.mark_retry(conn, item.id, "run-1", "late", NOW, NOW)
        assert messages.mark_sent(conn, item.id, NOW)


def test_transitions_are_guarded_by_state_and_owner(engine: Engine) -> None:
    with engine.begin() as conn:
        messages.plan(conn, message(), NOW)
    item = claim(engine)
    assert item is not None
    with engine.begin() as conn:
        assert not messages.mark_dead(conn, item.id, "someone-else", "550", NOW)
        assert messages.mark_retry(conn, item.id, "run-1", "451 greylisted", NOW, NOW + timedelta(minutes=5))
        assert not messages.resend(conn, "default", item.id, NOW)  # planned: nothing to decide
    assert claim(engine) is None  # not due yet
    retried = claim(engine, NOW + timedelta(minutes=5))
    assert retried is not None and retried.attempts == 2
    with engine.begin() as conn:
        assert messages.release(conn, retried.id, "run-1", NOW)
    (row,) = rows(engine)
    assert (row["state"], row["attempts"]) == ("planned", 1)  # a release costs no attempt


def test_support_marks_an_uncertain_message_sent(engine: Engine) -> None:
    with engine.begin() as conn:
        messages.plan(conn, message(), NOW)
    item = claim(engine)
    assert item is not None
    with engine.begin() as conn:
        messages.mark_uncertain(conn, item.id, "run-1", "lost", NOW)
        assert messages.mark_sent_by_support(conn, "default", item.id, NOW, "marked sent: in their inbox")
        assert not messages.mark_sent_by_support(conn, "default", item.id, NOW, "again")
    (row,) = rows(engine)
    assert row["state"] == "sent" and row["last_error"] == "marked sent: in their inbox"
