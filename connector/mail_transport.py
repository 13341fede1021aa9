"""How a message leaves: an SMTP server (stdlib `smtplib`) or `.eml` files in a folder.

Every failure is one of the error tree's branches, by what it says about delivery:

- `RetryableError`: certainly not accepted: no connection, a 4xx before or to the message;
  `ServerDown` when the server itself could not be used (try the others later, not now);
- `RejectedError`: refused for good (5xx): the row goes dead;
- `UncertainError`: the message went (after `DATA` was answered 354) but the server's answer
  was lost: it may be queued, so it is never re-sent without a decision;
- `ConfigError` / `AuthenticationError`: the credentials, the certificate or STARTTLS.

The "files" transport can also look a message up by its Message-ID (the file's name), which
resolves its uncertain rows; SMTP has no such lookup.
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import ssl
import tempfile
from pathlib import Path
from typing import Protocol

from connector.errors import AuthenticationError, ConfigError, RejectedError, RetryableError, UncertainError
from connector.mail_settings import MailSettings
from connector.redact import GLOBAL_REDACTOR
from connector.secrets import resolve_secret
from state.messages import ClaimedMessage

_DOT_LINE = re.compile(rb"(?m)^\.")


class ServerDown(RetryableError):
    """The server could not be reached or used at all: every message waits for a later run."""


class MailTransport(Protocol):
    """Sends one message; raises the error-tree branch its outcome belongs to."""

    name: str

    def send(self, item: ClaimedMessage, sender: str) -> None: ...

    def lookup(self, item: ClaimedMessage) -> bool | None:
        """True when the message was delivered, False when not, None when it cannot be known."""
        ...

    def check(self) -> str:
        """For `doctor`: what was verified without sending anything; raises what is wrong."""
        ...


def file_name(message_id: str) -> str:
    """The .eml file a Message-ID is written to: its left-hand part, file-name safe."""
    local = message_id.strip("<>").partition("@")[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", local) + ".eml"


class FilesTransport:
    """Each message as `<message-id>.eml` in `directory`, written atomically and never twice."""

    name = "files"

    def __init__(self, directory: Path, file_mode: int = 0o640) -> None:
        self.directory = directory
        self.file_mode = file_mode

    def path_of(self, item: ClaimedMessage) -> Path:
        return self.directory / file_name(item.message_id)

    def send(self, item: ClaimedMessage, sender: str) -> None:
        target = self.path_of(item)
        if target.exists():
            return  # written by an earlier attempt whose outcome was not recorded
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(item.message.encode("ascii"))
                    out.flush()
                    os.fsync(out.fileno())
                os.chmod(temporary, self.file_mode)
                with contextlib.suppress(FileExistsError):  # never replaces another writer's file
                    os.link(temporary, target)
            finally:
                os.unlink(temporary)
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            if target.exists():
                raise UncertainError(f"mail file {target}: written, then {exc.strerror or exc}") from None
            raise ServerDown(
                f"mail directory {self.directory}: cannot write: {exc.strerror or exc}"
            ) from None

    def lookup(self, item: ClaimedMessage) -> bool | None:
        return self.path_of(item).exists()

    def check(self) -> str:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle, probe = tempfile.mkstemp(dir=self.directory, prefix=".doctor-", suffix=".tmp")
            os.close(handle)
            os.unlink(probe)
        except OSError as exc:
            raise ConfigError(
                f"mail.directory {self.directory}: cannot write: {exc.strerror or exc}"
            ) from None
        return f"writes .eml files into {self.directory}"


def _reply(code: int, reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply
    return GLOBAL_REDACTOR(f"{code} {' '.join(text.split())}".strip())


def _refused(step: str, code: int, reply: bytes | str) -> RetryableError | RejectedError:
    """A server answer refusing `step`: 4xx is temporary, anything else permanent."""
    text = f"the SMTP server refused {step}: {_reply(code, reply)}"
    if 400 <= code < 500:
        return RetryableError(text, status=code, provider_code=str(code))
    return RejectedError(text, status=code, provider_code=str(code))


class SmtpTransport:
    """Hands each message to an SMTP server over one short connection: SSL, STARTTLS or plain."""

    name = "smtp"

    def __init__(self, settings: MailSettings, base_dir: Path) -> None:
        self.settings = settings
        self.password = ""
        if settings.username:
            self.password = resolve_secret(
                env=settings.password_env or None,
                file=settings.password_file,
                key="mail.password",
                base_dir=base_dir,
            )
        self.ca_file = base_dir / settings.ca_file if settings.ca_file else None

    def _context(self) -> ssl.SSLContext:
        try:
            return ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"mail.ca_file: cannot load {self.ca_file}: {exc}") from None

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        where = f"{s.host}:{s.smtp_port}"
        try:
            if s.security == "ssl":
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.smtp_port, timeout=s.timeout, context=self._context()
                )
            else:
                client = smtplib.SMTP(s.host, s.smtp_port, timeout=s.timeout)
            try:
                client.ehlo()
                if s.security == "starttls":
                    client.starttls(context=self._context())
                    client.ehlo()
                if s.username:
                    client.login(s.username, self.password)
            except BaseException:
                client.close()
                raise
        except ssl.SSLCertVerificationError as exc:
            raise ConfigError(
                f"mail.host {where}: certificate not trusted ({exc.verify_message}); "
                "set mail.ca_file to its CA"
            ) from None
        except smtplib.SMTPNotSupportedError:
            raise ConfigError(f"mail.host {where} offers no STARTTLS; use security = 'ssl'") from None
        except smtplib.SMTPAuthenticationError as exc:
            answer = _reply(exc.smtp_code, exc.smtp_error)
            raise AuthenticationError(
                f"mail.username: the SMTP server {where} refused the credentials: {answer}"
            ) from None
        except smtplib.SMTPResponseException as exc:
            answer = _reply(exc.smtp_code, exc.smtp_error)
            raise ServerDown(f"the SMTP server {where} answered {answer}", status=exc.smtp_code) from None
        except OSError as exc:  # refused, unreachable, timed out, TLS handshake, closed early
            raise ServerDown(f"the SMTP server {where} cannot be used: {GLOBAL_REDACTOR(str(exc))}") from None
        return client

    def send(self, item: ClaimedMessage, sender: str) -> None:
        client = self._connect()
        try:
            self._transaction(client, item, sender)
        finally:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def _transaction(self, client: smtplib.SMTP, item: ClaimedMessage, sender: str) -> None:
        try:
            code, reply = client.mail(sender)
            if code != 250:  # about every message, not this one
                text = f"the SMTP server refused the sender mail.from_address {sender}: {_reply(code, reply)}"
                if 400 <= code < 500:
                    raise ServerDown(text, status=code, provider_code=str(code))
                raise ConfigError(text)
            code, reply = client.rcpt(item.recipient)
            if code not in (250, 251):
                raise _refused(f"the recipient {item.recipient}", code, reply)
            code, reply = client.docmd("DATA")
            if code != 354:
                raise _refused("DATA", code, reply)
        except OSError as exc:  # the connection went before the message did: nothing was sent
            raise RetryableError(f"the SMTP connection was lost before the message was sent: {exc}") from None
        payload = _DOT_LINE.sub(b"..", item.message.encode("ascii"))
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        try:
            client.send(payload + b".\r\n")
            code, reply = client.getreply()
        except OSError as exc:
            raise UncertainError(
                f"the SMTP connection was lost after the message was sent, before the server answered "
                f"({exc}): it may be queued; not sent again without a decision"
            ) from None
        if code != 250:
            raise _refused("the message", code, reply)

    def lookup(self, item: ClaimedMessage) -> bool | None:
        return None  # SMTP cannot ask whether a server queued a message: support decides

    def check(self) -> str:
        """Connect, negotiate TLS and log in as a send would, then quit: nothing is sent."""
        client = self._connect()
        with contextlib.suppress(smtplib.SMTPException, OSError):
            client.quit()
        s = self.settings
        login = f", logged in as {s.username}" if s.username else ""
        return f"SMTP {s.host}:{s.smtp_port} ({s.security}){login}"


def open_transport(settings: MailSettings, base_dir: Path) -> MailTransport:
    """The configured transport (ConfigError for a secret that cannot be read)."""
    if settings.transport == "files":
        directory = settings.directory if settings.directory.is_absolute() else base_dir / settings.directory
        return FilesTransport(directory)
    return SmtpTransport(settings, base_dir)
