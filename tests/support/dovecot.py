"""A real dovecot IMAP server on a free 127.0.0.1 port, with a temporary config, user and Maildir.

Needs `apt-get install -y dovecot-imapd` (Debian 12: dovecot 2.3.19); without it the tests that
use the fixture skip, or fail under CI=true. Works as root (mail stored as nobody:nogroup) and as
an ordinary user (every dovecot process runs as that user). When `openssl` is present the server
also offers STARTTLS and implicit TLS with a throw-away certificate for 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.shared import require_service

USERNAME = "po-inbox@example.test"
PASSWORD = "imap-test-Secret-4711"

_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:{d}/mail/%u/Maildir
{ssl_lines}
{user_lines}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = home={d}/mail/%u
}}
service anvil {{
  chroot =
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
}}
"""
# Dovecot refuses to access mail as uid 0. The anvil block above turns off the growing delay
# after failed logins, which would slow down every test after a wrong-password test.
_ROOT_LINES = "mail_uid = nobody\nmail_gid = nogroup\nfirst_valid_uid = 1"
_USER_LINES = (
    "default_login_user = {u}\ndefault_internal_user = {u}\ndefault_internal_group = {g}\n"
    "service imap-login {{\n  chroot =\n}}"
)


@dataclass
class DovecotServer:
    """A running dovecot: where it listens, who may log in, and helpers to prepare mailboxes."""

    host: str
    port: int
    ssl_port: int | None
    ca_file: Path | None
    username: str
    password: str
    directory: Path

    def client(self) -> imaplib.IMAP4:
        """A new plain connection, logged in."""
        client = imaplib.IMAP4(self.host, self.port, timeout=10)
        client.login(self.username, self.password)
        return client

    def new_mailbox(self, prefix: str = "po") -> str:
        """A fresh, empty mailbox so tests sharing the server never see each other's mail."""
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        with self.session() as client:
            typ, data = client.create(name)
            assert typ == "OK", data
        return name

    @contextlib.contextmanager
    def session(self) -> Iterator[imaplib.IMAP4]:
        client = self.client()
        try:
            yield client
        finally:
            client.logout()

    def append(self, mailbox: str, raw: bytes, flags: str = "") -> None:
        """Deliver a message with IMAP APPEND (no Maildir permissions involved)."""
        with self.session() as client:
            typ, data = client.append(mailbox, f"({flags})" if flags else None, None, raw)
            assert typ == "OK", data

    def search(self, mailbox: str, criteria: str = "ALL") -> list[int]:
        """UIDs of `mailbox` matching `criteria`, read-only (flags stay as they are)."""
        with self.session() as client:
            typ, data = client.select(mailbox, readonly=True)
            assert typ == "OK", data
            typ, data = client.uid("SEARCH", criteria)
            assert typ == "OK", data
            return [int(uid) for uid in (data[0] or b"").split()]

    def log(self) -> str:
        path = self.directory / "dovecot.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _binary() -> str | None:
    return shutil.which("dovecot") or next(
        (p for p in ("/usr/sbin/dovecot", "/usr/local/sbin/dovecot") if os.access(p, os.X_OK)), None
    )


def _make_certificate(directory: Path) -> tuple[Path, Path] | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@contextlib.contextmanager
def dovecot_server(
    users: dict[str, str] | None = None, *, tls: bool = True, timeout: float = 10
) -> Iterator[DovecotServer]:
    """Start dovecot with a temporary config; stop it and delete everything afterwards."""
    binary = _binary()
    require_service(binary is not None, "dovecot-imapd is not installed: apt-get install dovecot-imapd")
    assert binary is not None
    users = users or {USERNAME: PASSWORD}
    directory = Path(tempfile.mkdtemp(prefix="dovecot-"))
    directory.chmod(0o755)
    proc: subprocess.Popen[bytes] | None = None
    try:
        for sub in ("run", "state", "mail"):
            (directory / sub).mkdir()
        if os.geteuid() == 0:
            owner = (pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid)
            user_lines = _ROOT_LINES
        else:
            owner = (os.getuid(), os.getgid())
            user_lines = _USER_LINES.format(
                u=pwd.getpwuid(os.getuid()).pw_name, g=grp.getgrgid(os.getgid()).gr_name
            )
        (directory / "users").write_text("".join(f"{u}:{{PLAIN}}{p}\n" for u, p in users.items()))
        (directory / "users").chmod(0o644)  # the auth process runs as the `dovecot` user
        for user in users:
            for sub in ("new", "cur", "tmp"):
                (directory / "mail" / user / "Maildir" / sub).mkdir(parents=True)
        for root, dirs, _ in os.walk(directory / "mail"):
            for name in dirs:
                os.chown(os.path.join(root, name), *owner)
        os.chown(directory / "mail", *owner)
        pair = _make_certificate(directory) if tls else None
        port = free_port()
        ssl_port = free_port() if pair else 0
        ssl_lines = f"ssl = yes\nssl_cert = <{pair[0]}\nssl_key = <{pair[1]}" if pair else "ssl = no"
        conf = directory / "dovecot.conf"
        conf.write_text(
            _CONF.format(
                d=directory, port=port, ssl_port=ssl_port, ssl_lines=ssl_lines, user_lines=user_lines
            )
        )
        proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
        )
        _wait_for_port(proc, port, timeout, directory)
        yield DovecotServer(
            host="127.0.0.1",
            port=port,
            ssl_port=ssl_port or None,
            ca_file=pair[0] if pair else None,
            username=next(iter(users)),
            password=users[next(iter(users))],
            directory=directory,
        )
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _wait_for_port(proc: subprocess.Popen[bytes], port: int, timeout: float, directory: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            log = directory / "dovecot.log"
            raise RuntimeError("dovecot exited: " + (log.read_text()[-2000:] if log.exists() else ""))
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("dovecot did not start") from None
            time.sleep(0.05)


@pytest.fixture(scope="module")
def dovecot() -> Iterator[DovecotServer]:
    """One dovecot per test module; each test takes its own mailbox with `new_mailbox()`."""
    with dovecot_server() as server:
        yield server
