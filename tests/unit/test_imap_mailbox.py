"""IMAP mailbox decisions (when to flag, when to move, how errors are classified) on a fake server."""

from __future__ import annotations

import imaplib
from collections.abc import Callable, Iterator
from email.message import EmailMessage, Message
from typing import Any

import pytest
from pydantic import ValidationError

from adapters.email_csv import EmailCsvConfig
from adapters.email_csv_parsing import message_batches
from adapters.imap_mailbox import ImapConfig, ImapMailbox, is_loopback, quote_mailbox
from connector.errors import AuthenticationError, ConfigError, RetryableError
from connector.ports import SourceBatch
from mappings.csv_mapping import load_mapping

PASSWORD = "fake-Secret-0815"
MAPPING = load_mapping("csv_default")
HEADER = "PO Number,SKU,Quantity,Unit Price,Currency\n"


def mail(*numbers: str, message_id: str, date: str = "Mon, 05 Jan 2026 09:00:00 +0000") -> bytes:
    """A message with one CSV attachment per PO number."""
    message = EmailMessage()
    message["From"] = "ap@acme.example"
    message["Date"] = date
    message["Message-ID"] = message_id
    message.set_content("attached")
    for number in numbers:
        message.add_attachment(
            f"{HEADER}{number},PLAN-PRO,1,10.00,USD\n", subtype="csv", filename=f"{number}.csv"
        )
    return message.as_bytes()


class FakeImap:
    """Answers like imaplib.IMAP4 does and records every command."""

    def __init__(
        self,
        messages: dict[int, bytes],
        *,
        capabilities: tuple[str, ...] = ("IMAP4rev1",),
        mailboxes: tuple[str, ...] = ("INBOX",),
        fail: dict[str, Exception | str] | None = None,
    ) -> None:
        self.messages = dict(messages)
        self.capabilities = capabilities
        self.mailboxes = set(mailboxes)
        self.fail = fail or {}
        self.calls: list[tuple[str, ...]] = []
        self.seen: set[int] = set()
        self.deleted: set[int] = set()
        self.moved: dict[int, str] = {}

    def _maybe_fail(self, name: str) -> str:
        problem = self.fail.get(name)
        if isinstance(problem, Exception):
            raise problem
        return problem or "OK"

    def login(self, user: str, password: str) -> tuple[str, list[bytes]]:
        self.calls.append(("LOGIN", user))
        self._maybe_fail("LOGIN")
        return "OK", [b"Logged in"]

    def authenticate(self, mechanism: str, callback: Callable[[bytes], bytes]) -> tuple[str, list[bytes]]:
        self.calls.append(("AUTHENTICATE", mechanism, callback(b"").decode()))
        return "OK", [b"Logged in"]

    def capability(self) -> tuple[str, list[bytes]]:
        return "OK", [" ".join(self.capabilities).encode()]

    def select(self, mailbox: str) -> tuple[str, list[bytes]]:
        self.calls.append(("SELECT", mailbox))
        if mailbox.strip('"') not in self.mailboxes:
            return "NO", [b"Mailbox doesn't exist"]
        return "OK", [str(len(self.messages)).encode()]

    def list(self, directory: str, pattern: str) -> tuple[str, list[Any]]:
        self.calls.append(("LIST", pattern))
        return "OK", [b'() "." ' + pattern.encode()] if pattern.strip('"') in self.mailboxes else [None]

    def create(self, mailbox: str) -> tuple[str, list[bytes]]:
        self.calls.append(("CREATE", mailbox))
        self.mailboxes.add(mailbox.strip('"'))
        return "OK", [b"Created"]

    def uid(self, command: str, *args: str) -> tuple[str, list[Any]]:
        self.calls.append(("UID", command, *args))
        status = self._maybe_fail(command)
        if status != "OK":
            return status, [b"Server says no"]
        if command == "SEARCH":
            live = [u for u in sorted(self.messages) if u not in self.deleted and u not in self.moved]
            if "UNSEEN" in args:
                live = [u for u in live if u not in self.seen]
            return "OK", [" ".join(map(str, live)).encode()]
        if command == "FETCH":
            wanted = [int(u) for u in args[0].split(",")]
            found: list[Any] = []
            for uid in wanted:
                if uid in self.messages:
                    part = "BODY[]" if args[1] == "(BODY.PEEK[])" else "BODY[HEADER.FIELDS (DATE)]"
                    body = self.messages[uid] if part == "BODY[]" else self.messages[uid].split(b"\n\n")[0]
                    found += [(f"{uid} (UID {uid} {part} {{{len(body)}}}".encode(), body), b")"]
            return "OK", found or [None]
        uid = int(args[0])
        if command == "STORE":
            if "\\Seen" in args[2]:
                self.seen.add(uid)
            if "\\Deleted" in args[2]:
                self.deleted.add(uid)
        elif command in ("MOVE", "COPY"):
            self.moved[uid] = args[1].strip('"')
        return "OK", [None]

    def expunge(self) -> tuple[str, list[Any]]:
        self.calls.append(("EXPUNGE",))
        return "OK", [None]

    def logout(self) -> tuple[str, list[bytes]]:
        self.calls.append(("LOGOUT",))
        return "BYE", [b"Logging out"]

    def commands(self, name: str) -> list[tuple[str, ...]]:
        return [c for c in self.calls if c[:2] == ("UID", name) or c[0] == name]


def parse(
    message: Message, name: str, fallback_id: str, skip: Callable[[str], bool]
) -> Iterator[SourceBatch]:
    return message_batches(
        message,
        MAPPING,
        source="mail",
        senders={},
        tenant="default",
        name=name,
        fallback_id=fallback_id,
        skip=skip,
    )


@pytest.fixture(autouse=True)
def password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_PASSWORD", PASSWORD)


def config(**settings: Any) -> ImapConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "tls": "none",
        "username": "po",
        "password_env": "IMAP_PASSWORD",
    }
    values.update(settings)
    return ImapConfig.model_validate(values)


def mailbox(fake: FakeImap | Exception, **settings: Any) -> ImapMailbox:
    def opener(cfg: ImapConfig, context: Any) -> Any:
        if isinstance(fake, Exception):
            raise fake
        return fake

    return ImapMailbox(config(**settings), source="mail", opener=opener)


def pull(box: ImapMailbox, processed: set[str] | None = None) -> list[SourceBatch]:
    done = processed or set()
    return list(box.pull(parse, done.__contains__))


# ---------------------------------------------------------------------------- flag decisions


def test_messages_are_read_with_peek_so_reading_never_marks_them_seen() -> None:
    fake = FakeImap({1: mail("P-1", message_id="<1@x>")})
    pull(mailbox(fake))
    fetches = fake.commands("FETCH")
    assert fetches and all("PEEK" in command[3] for command in fetches)
    assert fake.seen == set()


def test_only_the_last_batch_of_a_message_marks_it_seen_and_only_when_called() -> None:
    fake = FakeImap({7: mail("P-1", "P-2", message_id="<7@x>")})
    first, last = pull(mailbox(fake))
    assert first.after_commit is None and last.after_commit is not None
    assert fake.commands("STORE") == []
    last.after_commit()
    assert fake.commands("STORE") == [("UID", "STORE", "7", "+FLAGS.SILENT", "(\\Seen)")]


def test_a_message_whose_inputs_are_all_processed_is_marked_done_without_batches() -> None:
    fake = FakeImap({3: mail("P-1", message_id="<3@x>"), 4: mail("P-2", message_id="<4@x>")})
    box = mailbox(fake)
    keys = {b.input_key for b in pull(mailbox(FakeImap({3: fake.messages[3]})))}
    batches = pull(box, processed={k for k in keys if k})
    assert [r.po.po_number for b in batches for r in b.records] == ["P-2"]
    assert fake.seen == {3}  # flagged during the pull, before any commit of message 4
    batches[-1].after_commit()  # type: ignore[misc]
    assert fake.seen == {3, 4}


def test_a_partly_processed_message_yields_only_the_rest_and_the_rest_marks_it_done() -> None:
    raw = mail("P-1", "P-2", message_id="<9@x>")
    first, _ = pull(mailbox(FakeImap({9: raw})))
    fake = FakeImap({9: raw})
    [rest] = pull(mailbox(fake), processed={first.input_key or ""})
    assert [r.po.po_number for r in rest.records] == ["P-2"]
    assert rest.after_commit is not None and fake.seen == set()


def test_a_message_without_an_attachment_is_one_rejection_that_marks_it_done() -> None:
    message = EmailMessage()
    message["From"], message["Message-ID"] = "ap@acme.example", "<thanks@x>"
    message.set_content("Thank you!")
    fake = FakeImap({5: message.as_bytes()})
    [batch] = pull(mailbox(fake))
    assert batch.input_key == "<thanks@x>|no-attachment"
    assert batch.rejections[0].reason == "no CSV or cXML attachment"
    assert batch.after_commit is not None
    assert pull(mailbox(FakeImap({5: message.as_bytes()})), processed={batch.input_key}) == []


def test_messages_are_handed_out_in_date_order_not_uid_order() -> None:
    fake = FakeImap(
        {
            1: mail("LATE", message_id="<1@x>", date="Thu, 15 Oct 2026 12:00:00 +0000"),
            2: mail("EARLY", message_id="<2@x>", date="Sat, 20 Jun 2026 09:00:00 +0000"),
        }
    )
    assert [r.po.po_number for b in pull(mailbox(fake)) for r in b.records] == ["EARLY", "LATE"]


def test_search_skips_deleted_messages_and_asks_for_unseen_by_default() -> None:
    fake = FakeImap({})
    pull(mailbox(fake))
    assert fake.commands("SEARCH") == [("UID", "SEARCH", "UNSEEN", "UNDELETED")]
    fake = FakeImap({})
    pull(mailbox(fake, search="ALL"))
    assert fake.commands("SEARCH") == [("UID", "SEARCH", "ALL", "UNDELETED")]


# ---------------------------------------------------------------------------- move decisions


def done(fake: FakeImap, **settings: Any) -> None:
    [batch] = pull(mailbox(fake, **settings))
    assert batch.after_commit is not None
    batch.after_commit()


def test_move_uses_uid_move_when_the_server_can() -> None:
    fake = FakeImap({2: mail("P-1", message_id="<2@x>")}, capabilities=("IMAP4rev1", "MOVE", "UIDPLUS"))
    done(fake, processed_mailbox="Done")
    assert fake.commands("MOVE") == [("UID", "MOVE", "2", '"Done"')]
    assert fake.commands("COPY") == [] and fake.commands("STORE") == []


def test_without_move_it_copies_deletes_and_expunges_only_that_uid_with_uidplus() -> None:
    fake = FakeImap({2: mail("P-1", message_id="<2@x>")}, capabilities=("IMAP4rev1", "UIDPLUS"))
    done(fake, processed_mailbox="Done")
    assert [c[1:] for c in fake.calls if c[0] == "UID" and c[1] != "SEARCH" and c[1] != "FETCH"] == [
        ("COPY", "2", '"Done"'),
        ("STORE", "2", "+FLAGS.SILENT", "(\\Seen \\Deleted)"),
        ("EXPUNGE", "2"),
    ]
    assert ("EXPUNGE",) not in fake.calls


def test_without_move_or_uidplus_it_falls_back_to_a_plain_expunge() -> None:
    fake = FakeImap({2: mail("P-1", message_id="<2@x>")})
    done(fake, processed_mailbox="Done")
    assert fake.commands("COPY") and ("EXPUNGE",) in fake.calls


def test_a_missing_processed_mailbox_is_created_once_before_reading() -> None:
    fake = FakeImap({})
    pull(mailbox(fake, processed_mailbox="Processed POs"))
    assert fake.commands("CREATE") == [("CREATE", '"Processed POs"')]
    pull(mailbox(fake, processed_mailbox="Processed POs"))
    assert len(fake.commands("CREATE")) == 1


def test_a_refused_flag_is_retryable_and_leaves_the_message_for_the_next_run() -> None:
    fake = FakeImap({2: mail("P-1", message_id="<2@x>")}, fail={"STORE": "NO"})
    [batch] = pull(mailbox(fake))
    with pytest.raises(RetryableError, match="UID STORE failed: Server says no"):
        batch.after_commit()  # type: ignore[misc]


# ---------------------------------------------------------------------------- errors and secrets


def test_a_refused_login_is_an_authentication_error_without_the_password() -> None:
    echo = imaplib.IMAP4.error(f"[AUTHENTICATIONFAILED] bad password {PASSWORD}")
    with pytest.raises(AuthenticationError) as caught:
        pull(mailbox(FakeImap({}, fail={"LOGIN": echo})))
    assert PASSWORD not in str(caught.value) and "'po'" in str(caught.value)


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(111, "Connection refused"),
        TimeoutError("timed out"),
        imaplib.IMAP4.abort("EOF"),
    ],
)
def test_connection_failures_are_retryable(error: Exception) -> None:
    with pytest.raises(RetryableError):
        pull(mailbox(error))


def test_a_connection_lost_while_fetching_is_retryable() -> None:
    fake = FakeImap(
        {1: mail("P-1", message_id="<1@x>")}, fail={"FETCH": imaplib.IMAP4.abort("socket error: EOF")}
    )
    with pytest.raises(RetryableError, match="UID FETCH failed"):
        pull(mailbox(fake))


def test_an_unknown_mailbox_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"imap\.mailbox = 'Orders'"):
        pull(mailbox(FakeImap({}), mailbox="Orders"))


def test_a_non_ascii_password_logs_in_with_authenticate_plain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAP_PASSWORD", "Pässwort-1")
    fake = FakeImap({})
    pull(mailbox(fake))
    assert fake.calls[0] == ("AUTHENTICATE", "PLAIN", "\0po\0Pässwort-1")


# ---------------------------------------------------------------------------- config


@pytest.mark.parametrize("host", ["mail.example.com", "10.0.0.5", "0.0.0.0"])
def test_plain_imap_to_a_remote_host_is_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="only to a loopback host"):
        mailbox(FakeImap({}), host=host, tls="none")


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost", "LOCALHOST."])
def test_loopback_hosts_count_as_loopback(host: str) -> None:
    assert is_loopback(host)


def test_tls_to_a_remote_host_is_allowed_and_ports_default_by_mode() -> None:
    assert mailbox(FakeImap({}), host="imap.example.com", tls="ssl").config.effective_port == 993
    assert config(tls="starttls").effective_port == 143
    assert config(tls="ssl").effective_port == 993
    assert config(port=1143).effective_port == 1143
    assert ImapConfig(host="h", username="u").tls == "ssl"


def test_the_processed_mailbox_must_differ_from_the_mailbox() -> None:
    with pytest.raises(ConfigError, match="processed_mailbox"):
        mailbox(FakeImap({}), processed_mailbox="INBOX")


def test_a_missing_password_is_a_config_error_naming_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IMAP_PASSWORD")
    with pytest.raises(ConfigError, match=r"imap\.password: environment variable IMAP_PASSWORD is not set"):
        mailbox(FakeImap({}))


def test_mailbox_names_are_quoted() -> None:
    assert quote_mailbox('Done "x" \\ y') == '"Done \\"x\\" \\\\ y"'


def test_a_source_needs_exactly_one_of_maildir_and_imap() -> None:
    imap = {"host": "127.0.0.1", "username": "u", "password_env": "IMAP_PASSWORD"}
    with pytest.raises(ValidationError, match="either maildir"):
        EmailCsvConfig(name="m", type="email-csv")
    with pytest.raises(ValidationError, match="either maildir"):
        EmailCsvConfig(name="m", type="email-csv", maildir="inbox", imap=imap)
    assert EmailCsvConfig(name="m", type="email-csv", imap=imap).imap is not None


def test_unknown_keys_in_the_imap_block_are_refused() -> None:
    with pytest.raises(ValidationError, match="password"):
        ImapConfig.model_validate({"host": "h", "username": "u", "password": "inline"})
