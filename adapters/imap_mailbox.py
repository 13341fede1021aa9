"""Reading purchase-order e-mails from an IMAP mailbox for the `email-csv` source.

Messages are found with `UID SEARCH`, read oldest first (by their Date header) with
`BODY.PEEK[]`, which never sets `\\Seen`, and parsed with the standard e-mail package. Each
message is marked done (flagged `\\Seen`, or moved to a processed mailbox) only after the
batches of all its attachments are committed: the last batch of a message carries the marking
as its `after_commit`. A message whose inputs were all committed before (a crash between the
commit and the marking) is marked done without being processed again.

CSV attachments go through the same parser as `.eml` files; cXML OrderRequest and UBL Order /
OrderChange attachments (`.xml`, `.cxml`, `text/xml`, `application/xml`) are parsed as the
`cxml` source does (a UBL OrderCancellation, which needs the order it cancels, only there). Errors:
unreachable server or dropped connection -> RetryableError, refused login -> AuthenticationError,
bad settings (plain IMAP to a remote host, unknown mailbox, untrusted certificate) -> ConfigError.
"""

from __future__ import annotations

import imaplib
import ipaddress
import logging
import re
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from adapters.mail_messages import EPOCH, MessageParser, header_date, message_order_batches
from connector.errors import AuthenticationError, ConfigError, RetryableError
from connector.ports import SourceBatch
from connector.redact import GLOBAL_REDACTOR
from connector.secrets import resolve_secret

TlsMode = Literal["none", "starttls", "ssl"]
_UID = re.compile(rb"\bUID (\d+)")
_CHUNK = 500  # UIDs per FETCH command, to keep command lines short
_log = logging.getLogger("po_connector.imap")
_Result = tuple[str, list[Any]]

Opener = Callable[["ImapConfig", "ssl.SSLContext | None"], imaplib.IMAP4]


class ImapConfig(BaseModel):
    """The `imap` block of an `email-csv` source: where the mailbox is and what to do after."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)  # default: 993 for ssl, else 143
    tls: TlsMode = "ssl"
    ca_file: Path | None = None  # extra CA bundle to trust (a private mail server's CA)
    username: str = Field(min_length=1)
    password_env: str | None = None
    password_file: Path | None = None
    mailbox: str = "INBOX"
    processed_mailbox: str | None = None  # move done messages there; else flag them \Seen
    search: Literal["UNSEEN", "ALL"] = "UNSEEN"
    timeout: float = Field(default=30.0, gt=0, le=600)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 993 if self.tls == "ssl" else 143


def is_loopback(host: str) -> bool:
    """True for `localhost` and loopback IP literals: the only hosts plain IMAP may go to."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def quote_mailbox(name: str) -> str:
    """A mailbox name as an IMAP quoted string."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def open_client(config: ImapConfig, context: ssl.SSLContext | None) -> imaplib.IMAP4:
    """Connect (and negotiate TLS) as the config says; no login yet."""
    port = config.effective_port
    if config.tls == "ssl":
        return imaplib.IMAP4_SSL(config.host, port, ssl_context=context, timeout=config.timeout)
    client = imaplib.IMAP4(config.host, port, timeout=config.timeout)
    if config.tls == "starttls":
        try:
            client.starttls(ssl_context=context)
        except BaseException:
            with suppress(OSError):  # a failed handshake may have closed the socket already
                client.shutdown()
            raise
    return client


def _text(value: object) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    return GLOBAL_REDACTOR(str(value))


def _detail(data: list[object]) -> str:
    return " ".join(_text(item) for item in data if item is not None)[:300]


class ImapMailbox:
    """One configured mailbox: opens sessions and turns its messages into source batches."""

    def __init__(
        self,
        config: ImapConfig,
        *,
        source: str,
        tenant: str = "default",
        base_dir: Path = Path("."),
        opener: Opener = open_client,
    ) -> None:
        self.config = config
        self.source = source
        self.tenant = tenant
        self._opener = opener
        where = f"source {source}: imap"
        if config.tls == "none" and not is_loopback(config.host):
            raise ConfigError(
                f"{where}.tls = 'none': plain IMAP is allowed only to a loopback host, not "
                f"{config.host!r}; use tls = 'starttls' or 'ssl'"
            )
        if config.processed_mailbox is not None and config.processed_mailbox == config.mailbox:
            raise ConfigError(f"{where}.processed_mailbox: must differ from mailbox {config.mailbox!r}")
        for key, name in (("mailbox", config.mailbox), ("processed_mailbox", config.processed_mailbox)):
            if name is not None and (not name or not name.isascii() or not name.isprintable()):
                raise ConfigError(f"{where}.{key} = {name!r}: use the mailbox's ASCII name")
        self._password = resolve_secret(
            env=config.password_env, file=config.password_file, key=f"{where}.password", base_dir=base_dir
        )
        self._ca_file = base_dir / config.ca_file if config.ca_file is not None else None
        self.label = f"imap://{config.host}:{config.effective_port}"

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.config.tls == "none":
            return None
        try:
            return ssl.create_default_context(cafile=str(self._ca_file) if self._ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"source {self.source}: imap.ca_file: cannot load {self._ca_file}: {exc}"
            ) from None

    @contextmanager
    def session(self, mailbox: str | None = None) -> Iterator[ImapSession]:
        """A logged-in connection with `mailbox` (default: the configured one) selected."""
        client = self._connect()
        try:
            self._login(client)
            session = ImapSession(client, self.config, self.label, _capabilities(client))
            session.select(mailbox or self.config.mailbox)
            yield session
        finally:
            _close(client)

    def _connect(self) -> imaplib.IMAP4:
        try:
            return self._opener(self.config, self._ssl_context())
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(
                f"source {self.source}: {self.label}: the server's TLS certificate is not trusted "
                f"({exc.verify_message}); set imap.ca_file to its CA"
            ) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise RetryableError(f"{self.label}: cannot connect: {_text(exc)}") from None

    def _login(self, client: imaplib.IMAP4) -> None:
        username = self.config.username
        try:
            if self._password.isascii():
                client.login(username, self._password)
            else:
                token = f"\0{username}\0{self._password}".encode()
                client.authenticate("PLAIN", lambda _challenge: token)
        except imaplib.IMAP4.abort as exc:
            raise RetryableError(f"{self.label}: connection lost at login: {_text(exc)}") from None
        except imaplib.IMAP4.error as exc:
            raise AuthenticationError(
                f"source {self.source}: {self.label} refused the login of {username!r}: {_text(exc)}"
            ) from None
        except OSError as exc:
            raise RetryableError(f"{self.label}: connection lost at login: {_text(exc)}") from None

    def pull(self, parse: MessageParser, is_processed: Callable[[str], bool]) -> Iterator[SourceBatch]:
        """Batches of every matching message, oldest first; the last batch of each marks it done."""
        seen: set[str] = set()

        def skip(key: str) -> bool:
            return key in seen or is_processed(key)

        with self.session() as session:
            if self.config.processed_mailbox is not None:
                session.ensure_mailbox(self.config.processed_mailbox)
            uids = session.ordered(session.search(self.config.search))
            _log.info("%d message(s) to read in %s", len(uids), self.config.mailbox)
            for uid in uids:
                raw = session.fetch(uid)
                if raw is None:  # expunged by someone else since the search
                    continue
                batches = list(self.message_batches(raw, session.name_of(uid), parse, skip))
                if not batches:
                    session.mark_done(uid)
                    continue
                seen.update(b.input_key for b in batches if b.input_key)
                batches[-1] = replace(batches[-1], after_commit=partial(session.mark_done, uid))
                yield from batches

    def every_batch(self, parse: MessageParser) -> Iterator[SourceBatch]:
        """Batches of every message of the mailbox, then of the processed mailbox; flags nothing."""
        with self.session() as session:
            yield from self._all_of(session, parse)
            if self.config.processed_mailbox is None:
                return
            try:
                session.select(self.config.processed_mailbox)
            except ConfigError:  # not created yet: nothing was moved there
                return
            yield from self._all_of(session, parse)

    def _all_of(self, session: ImapSession, parse: MessageParser) -> Iterator[SourceBatch]:
        for uid in session.ordered(session.search("ALL")):
            raw = session.fetch(uid)
            if raw is not None:
                yield from self.message_batches(raw, session.name_of(uid), parse, lambda key: False)

    def message_batches(
        self, raw: bytes, name: str, parse: MessageParser, skip: Callable[[str], bool]
    ) -> Iterator[SourceBatch]:
        """Batches of one raw message not skipped (see `message_order_batches`)."""
        return message_order_batches(
            raw, name, source=self.source, tenant=self.tenant, parse=parse, skip=skip
        )


class ImapSession:
    """A logged-in connection with one mailbox selected; every call is by UID."""

    def __init__(
        self, client: imaplib.IMAP4, config: ImapConfig, label: str, capabilities: frozenset[str]
    ) -> None:
        self.client = client
        self.config = config
        self.label = label
        self.capabilities = capabilities
        self.mailbox = config.mailbox

    def name_of(self, uid: int) -> str:
        """How documents from this message are named in records and problems."""
        return f"{self.label}/{self.mailbox};UID={uid}"

    def select(self, mailbox: str) -> None:
        typ, data = self._call("SELECT", lambda: self.client.select(quote_mailbox(mailbox)))
        if typ != "OK":
            raise ConfigError(f"imap.mailbox = {mailbox!r}: {self.label} cannot open it: {_detail(data)}")
        self.mailbox = mailbox

    def search(self, criteria: str) -> list[int]:
        """UIDs matching `UNSEEN` or `ALL`; messages flagged \\Deleted are left alone."""
        data = self._uid("SEARCH", criteria, "UNDELETED")
        return sorted({int(uid) for line in data if isinstance(line, bytes) for uid in line.split()})

    def ordered(self, uids: list[int]) -> list[int]:
        """`uids` sorted by the Date header of their messages (undated first), then by UID."""
        dates: dict[int, datetime | None] = {}
        for start in range(0, len(uids), _CHUNK):
            chunk = ",".join(str(uid) for uid in uids[start : start + _CHUNK])
            data = self._uid("FETCH", chunk, "(BODY.PEEK[HEADER.FIELDS (DATE)])")
            for header, body in _fetched(data):
                found = _UID.search(header)
                if found:
                    dates[int(found.group(1))] = header_date(body)
        return sorted(uids, key=lambda uid: (dates.get(uid) or EPOCH, uid))

    def fetch(self, uid: int) -> bytes | None:
        """The whole message, read without setting \\Seen; None when it is gone."""
        data = self._uid("FETCH", str(uid), "(BODY.PEEK[])")
        for header, body in _fetched(data):
            if b"BODY[]" in header and (found := _UID.search(header)) and int(found.group(1)) == uid:
                return body
        return None

    def mark_done(self, uid: int) -> None:
        """Move the message to the processed mailbox, or flag it \\Seen when there is none."""
        target = self.config.processed_mailbox
        if target is None:
            self._uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen)")
        elif "MOVE" in self.capabilities:
            self._uid("MOVE", str(uid), quote_mailbox(target))
        else:
            self._uid("COPY", str(uid), quote_mailbox(target))
            self._uid("STORE", str(uid), "+FLAGS.SILENT", "(\\Seen \\Deleted)")
            if "UIDPLUS" in self.capabilities:
                self._uid("EXPUNGE", str(uid))
            else:
                self._ok("EXPUNGE", self.client.expunge)
        _log.info("message UID %d of %s marked done", uid, self.mailbox)

    def ensure_mailbox(self, name: str) -> None:
        """Create `name` unless it exists (the processed mailbox on first use)."""
        data = self._ok("LIST", lambda: self.client.list('""', quote_mailbox(name)))
        if not any(isinstance(line, bytes) and line for line in data):
            self._ok("CREATE", lambda: self.client.create(quote_mailbox(name)))
            _log.info("created mailbox %s", name)

    def _uid(self, command: str, *args: str) -> list[object]:
        return self._ok(f"UID {command}", lambda: self.client.uid(command, *args))

    def _ok(self, what: str, action: Callable[[], _Result]) -> list[object]:
        typ, data = self._call(what, action)
        if typ != "OK":
            raise RetryableError(f"{self.label}: {what} failed: {_detail(data)}")
        return list(data)

    def _call(self, what: str, action: Callable[[], _Result]) -> _Result:
        try:
            return action()
        except (imaplib.IMAP4.error, OSError) as exc:
            raise RetryableError(f"{self.label}: {what} failed: {_text(exc)}") from None


def _capabilities(client: imaplib.IMAP4) -> frozenset[str]:
    # Asked again after login: servers announce more (MOVE, UIDPLUS) to a logged-in user.
    try:
        typ, data = client.capability()
    except (imaplib.IMAP4.error, OSError) as exc:
        raise RetryableError(f"CAPABILITY failed: {_text(exc)}") from None
    words = " ".join(_text(item) for item in data if item) if typ == "OK" else ""
    return frozenset(word.upper() for word in words.split())


def _close(client: imaplib.IMAP4) -> None:
    try:
        client.logout()
    except (imaplib.IMAP4.error, OSError):
        _log.debug("logout failed; the connection is dropped anyway")


def _fetched(data: list[object]) -> Iterator[tuple[bytes, bytes]]:
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], bytes):
            yield item[0], item[1] if isinstance(item[1], bytes) else b""
