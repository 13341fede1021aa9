"""Drains the message outbox: claim -> send -> record, each step its own short transaction.

First, uncertain rows are looked up where the transport can (the "files" transport finds a
message by its Message-ID): found is sent, not found may go again. Then each due row is claimed,
handed to the transport and its outcome recorded at once:

- accepted: `sent`;
- certainly not accepted (no connection, a 4xx): `planned` again after a backoff (the
  invoice push's `[push]` retry settings), `dead` after `max_attempts`; a server that cannot be
  used at all ends the sending for this run;
- refused for good (5xx): `dead`, with the server's answer;
- lost after the message went: `uncertain`, never sent again by itself (`mail resend` /
  `mail mark-sent` decide where no lookup can);
- the credentials or the TLS setup refused: the row is handed back untried and the run counts a
  configuration error (exit 2), like a sink whose credentials are refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from connector.errors import ConfigError, RejectedError, RetryableError, UncertainError
from connector.mail_transport import MailTransport, ServerDown, open_transport
from connector.model import utcnow
from connector.pushing import backoff
from connector.runtime import Connector, RunContext
from state import messages
from state.messages import ClaimedMessage

log = logging.getLogger("po_connector.mail")


def mail_config_failed(run: RunContext, exc: ConfigError) -> None:
    """The mail setup cannot work: counted as a configuration error and reported; invoices go on."""
    run.add("config_errors")
    run.errors.append(f"mail: {exc}")
    log.error("mail: %s", exc)


def send_due(
    app: Connector,
    run: RunContext,
    *,
    transport: MailTransport | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Send every due message once; count what is sent and what still waits or needs a decision."""
    mail = app.settings.mail
    if mail is None:
        return
    try:
        try:
            chosen = transport or open_transport(mail, app.loaded.base_dir)
        except ConfigError as exc:
            mail_config_failed(run, exc)
            return
        _MessageSender(app, run, chosen, mail.from_address, clock).drain()
    finally:
        with app.connect() as conn:
            counts = messages.count_by_state(conn, app.tenant)
        run.add("messages_sent", 0)
        run.counts["messages_waiting"] = counts.get(messages.PLANNED, 0)
        run.counts["messages_uncertain"] = counts.get(messages.UNCERTAIN, 0)
        run.counts["messages_dead"] = counts.get(messages.DEAD, 0)


class _MessageSender:
    """Sends one run's due messages through one transport, recording each outcome."""

    def __init__(
        self,
        app: Connector,
        run: RunContext,
        transport: MailTransport,
        sender: str,
        clock: Callable[[], datetime],
    ) -> None:
        self.app, self.run, self.transport, self.sender, self.clock = app, run, transport, sender, clock
        self.tenant = app.tenant

    def drain(self) -> None:
        self.resolve_uncertain()
        tried: set[int] = set()
        while not self.run.lease_lost.is_set():
            with self.app.engine.begin() as conn:
                item = messages.claim_next(
                    conn,
                    tenant=self.tenant,
                    owner=self.run.run_id,
                    now=self.clock(),
                    lease_seconds=self.app.settings.push.claim_lease_seconds,
                )
            if item is None:
                return
            if item.id in tried:  # due again within this run: it waits for the next one
                self._record(messages.release, item.id, self.run.run_id, self.clock())
                return
            tried.add(item.id)
            if not self.send(item):
                return

    def resolve_uncertain(self) -> None:
        """Uncertain rows the transport can look up: found is sent, absent may be sent again
        (first, rows whose sender stopped mid-send become uncertain)."""
        with self.app.engine.begin() as conn:
            messages.expire_stale(conn, self.tenant, self.clock())
            doubtful = messages.uncertain(conn, self.tenant)
        for item in doubtful:
            found = self.transport.lookup(item)
            if found is None:
                continue
            now = self.clock()
            if found:
                note = f"found by its Message-ID {item.message_id} ({self.transport.name})"
                self._record(messages.mark_sent, item.id, now, note)
                log.info("message %s: %s", item.id, note)
            else:
                self._record(messages.resolve_absent, item.id, now)
                log.info("message %s: not delivered (looked up by Message-ID); sending it", item.id)

    def send(self, item: ClaimedMessage) -> bool:
        """Send one claimed message and record the outcome; False when sending must stop now."""
        owner = self.run.run_id
        where = f"message {item.id} to {item.recipient}"
        try:
            self.transport.send(item, self.sender)
        except UncertainError as exc:
            self._record(messages.mark_uncertain, item.id, owner, str(exc), self.clock())
            decide = f"`po-connector mail mark-sent {item.id}` or `mail resend {item.id}`"
            self._problem(f"{where}: uncertain: {exc}; check, then {decide}")
        except RejectedError as exc:
            self._record(messages.mark_dead, item.id, owner, str(exc), self.clock())
            self._problem(f"{where}: dead: {exc}")
        except RetryableError as exc:
            self._later(item, exc)
            return not isinstance(exc, ServerDown)
        except ConfigError as exc:
            self._record(messages.release, item.id, owner, self.clock(), str(exc))
            mail_config_failed(self.run, exc)
            return False
        else:
            self._record(messages.mark_sent, item.id, self.clock())
            self.run.add("messages_sent")
            log.info("%s: sent (%s)", where, item.message_id, extra={"message_id": item.message_id})
        return True

    def _later(self, item: ClaimedMessage, exc: RetryableError) -> None:
        now = self.clock()
        settings = self.app.settings.push
        if item.attempts >= settings.max_attempts:
            error = f"{exc} (after {item.attempts} attempts)"
            self._record(messages.mark_dead, item.id, self.run.run_id, error, now)
            self._problem(f"message {item.id} to {item.recipient}: dead: {error}")
            return
        when = now + backoff(settings, item.attempts)
        self._record(messages.mark_retry, item.id, self.run.run_id, str(exc), now, when)
        log.warning(
            "message %s to %s: not sent, trying again after %s: %s",
            item.id,
            item.recipient,
            when.isoformat(timespec="seconds"),
            exc,
        )

    def _problem(self, text: str) -> None:
        self.run.errors.append(text)
        log.error(text)

    def _record(self, step: Callable[..., bool], *args: object) -> None:
        with self.app.engine.begin() as conn:
            step(conn, *args)
