"""A real SMTP server (aiosmtpd) on a free 127.0.0.1 port: plain, STARTTLS or implicit TLS, with
AUTH, and with the answers a test scripts (a 451 then OK, a 550, a connection dropped after DATA).

Every server binds 127.0.0.1 and is stopped when its `with` block ends; certificates are
throw-away ones made with `openssl` for 127.0.0.1 (the tests that need one skip without it).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.support.shared import require_service

USERNAME = "billing@vendor.example"
PASSWORD = "smtp-test-Secret-4711"

Behaviour = Literal["accept", "drop_after_data", "451_then_ok", "550_recipient", "451_data_then_ok"]


@dataclass
class Recorder:
    """The aiosmtpd handler: answers as scripted, keeps every message it took."""

    behaviour: Behaviour = "accept"
    received: list[bytes] = field(default_factory=list)
    rcpt_attempts: list[str] = field(default_factory=list)
    data_attempts: int = 0
    logins: list[str] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        self.rcpt_attempts.append(address)
        if self.behaviour == "550_recipient":
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if self.behaviour == "451_then_ok" and len(self.rcpt_attempts) == 1:
            return "451 4.7.1 Greylisted, please try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.data_attempts += 1
        if self.behaviour == "451_data_then_ok" and self.data_attempts == 1:
            return "451 4.3.0 Temporary failure, try again"
        self.received.append(envelope.content)
        if self.behaviour == "drop_after_data":
            # The server queued the message, then the connection dies before the client hears 250.
            server.transport.abort()
        return "250 2.0.0 Ok: queued"

    def messages(self) -> list[Message]:
        return [message_from_bytes(raw, policy=default) for raw in self.received]


@dataclass
class SmtpServer:
    """Where a running test server listens, and what it received."""

    host: str
    port: int
    recorder: Recorder
    ca_file: Path | None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    require_service(openssl is not None, "openssl is not installed: it makes the test certificate")
    assert openssl is not None
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=60,
    )  # fmt: skip
    return cert, key


def _authenticator(recorder: Recorder, password: str) -> Any:
    def check(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        if isinstance(auth_data, LoginPassword):
            login = auth_data.login.decode()
            recorder.logins.append(login)
            if login == USERNAME and auth_data.password.decode() == password:
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    return check


@contextlib.contextmanager
def smtp_server(
    directory: Path,
    *,
    security: Literal["none", "starttls", "ssl"] = "none",
    auth: bool = False,
    behaviour: Behaviour = "accept",
    password: str = PASSWORD,
) -> Iterator[SmtpServer]:
    """Run an aiosmtpd server on 127.0.0.1 until the block ends (server-side timeout 10 s)."""
    recorder = Recorder(behaviour=behaviour)
    kwargs: dict[str, Any] = {"timeout": 10, "ready_timeout": 10}
    ca_file = None
    if security != "none":
        cert, key = make_certificate(directory)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert), str(key))
        ca_file = cert
        kwargs["ssl_context" if security == "ssl" else "tls_context"] = context
        if security == "starttls":
            kwargs["require_starttls"] = True
    if auth:
        kwargs["authenticator"] = _authenticator(recorder, password)
        kwargs["auth_required"] = True
        # Implicit TLS is encrypted from the start; aiosmtpd only counts STARTTLS as TLS.
        kwargs["auth_require_tls"] = security == "starttls"
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield SmtpServer(host="127.0.0.1", port=port, recorder=recorder, ca_file=ca_file)
    finally:
        controller.stop()
