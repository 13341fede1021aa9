"""PO source `email-csv`: purchase orders that arrive as CSV attachments of e-mails in a folder.

The messages come from a folder (a plain folder of `.eml` files or a Maildir with `cur/` and
`new/`) or from an IMAP mailbox (the `imap` block, see adapters/imap_mailbox.py). Messages are
read in the order of their Date header, so a later message revising a PO is applied after the
earlier one. Each CSV attachment is one input, keyed by the message id and the attachment's
SHA-256, and is never processed twice. The sender's address or domain chooses the buyer id
(`senders`) and, optionally, the mapping profile (`profiles`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from datetime import datetime
from email.message import Message
from email.parser import BytesParser
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pydantic import Field, field_validator, model_validator

from adapters.email_csv_parsing import (
    message_batches,
    message_file_batches,
    parse_csv_file,
    parse_message_file,
)
from adapters.imap_mailbox import ImapConfig, ImapMailbox
from adapters.mail_messages import (
    EPOCH,
    MESSAGE_POLICY,
    message_date,
)
from adapters.scratch_rows import ScratchRows
from connector.errors import ConfigError
from connector.ports import (
    AdapterConfig,
    AdapterContext,
    AdapterKind,
    Capability,
    PullContext,
    SourceBatch,
    SourceRecord,
)
from connector.registry import validate_block
from mappings.csv_mapping import CsvMapping, is_mapping_name, load_mapping


class EmailCsvConfig(AdapterConfig):
    """Settings of an `email-csv` source."""

    maildir: Path | None = None
    imap: ImapConfig | None = None
    mapping: str = "csv_default"
    senders: dict[str, str] = Field(default_factory=dict)
    # Sender address or domain -> mapping profile (name or path) used instead of `mapping`.
    profiles: dict[str, str] = Field(default_factory=dict)

    @field_validator("senders", "profiles")
    @classmethod
    def _lower_case_senders(cls, value: dict[str, str]) -> dict[str, str]:
        return {sender.strip().lower(): buyer for sender, buyer in value.items()}

    @model_validator(mode="after")
    def _one_place(self) -> EmailCsvConfig:
        if (self.maildir is None) == (self.imap is None):
            raise ValueError("set either maildir (a folder) or an imap block, not both or neither")
        return self


class EmailCsvSource:
    """Reads POs from CSV attachments of `.eml` files in a folder or a Maildir, or in an IMAP mailbox."""

    kind: ClassVar[AdapterKind] = AdapterKind.SOURCE
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.FETCH_ONE, Capability.INSPECT})
    Config: ClassVar[type[EmailCsvConfig]] = EmailCsvConfig
    inspect_suffixes: ClassVar[frozenset[str]] = frozenset({".eml", ".csv", ".txt"})

    @classmethod
    def inspect_file(
        cls, path: Path, block: Mapping[str, Any] | None, context: AdapterContext
    ) -> list[SourceBatch]:
        """`inspect FILE`: one message or bare CSV with the configured mapping, senders, profiles."""
        if block is None:
            name, mapping, senders, profiles = "inspect", load_mapping("csv_default"), {}, None
        else:
            # inspect reads a local file: no mailbox login needed
            local = {k: v for k, v in block.items() if k not in ("imap", "maildir")} | {"maildir": "."}
            source = cls(validate_block("sources", local, EmailCsvConfig), context)
            name, mapping, profiles = source.name, source.mapping, source.profiles
            senders = source.config.senders
        if path.suffix.lower() == ".csv":
            return [parse_csv_file(path, mapping, source=name, buyer_id="", tenant=context.tenant)]
        return parse_message_file(
            path, mapping, source=name, senders=senders, tenant=context.tenant, profiles=profiles
        )

    def __init__(self, config: EmailCsvConfig, context: AdapterContext) -> None:
        self.name = config.name
        self.config = config
        self.tenant = context.tenant
        self.folder: Path | None = None
        self.mailbox: ImapMailbox | None = None
        if config.imap is not None:
            self.mailbox = ImapMailbox(
                config.imap, source=config.name, tenant=context.tenant, base_dir=context.base_dir
            )
        elif config.maildir is not None:
            self.folder = context.resolve(config.maildir)
            if not self.folder.is_dir():
                raise ConfigError(f"source {config.name}: key maildir: {self.folder} is not a folder")
        loaded: dict[str, CsvMapping] = {}
        self.mapping = _load_profile(config.mapping, context.base_dir, loaded)
        self.profiles = {
            sender: _load_profile(profile, context.base_dir, loaded)
            for sender, profile in config.profiles.items()
        }

    def pull(self, context: PullContext) -> Iterator[SourceBatch]:
        """One batch per new CSV attachment (or unreadable message), oldest message first."""
        if self.mailbox is not None:
            yield from self.mailbox.pull(self._parse_message, context.is_processed)
            return
        assert self.folder is not None
        # A folder whose every message was read whole, listed as it was then (the same files,
        # each with the same stat), has nothing new: it costs a listing and no lookup.
        if context.cursor and context.cursor.get("listing") == _listing_digest(_listed_messages(self.folder)):
            return
        # A message read whole before (every attachment committed, none quarantined) is known by
        # the file's name, size, mtime and inode (no read), or else by its digest (a read and a
        # hash, no parse): a folder with little new costs a listing and a few lookups.
        # The folder is listed a slice at a time, and the messages to read are set aside on
        # disk in date order: however large the folder, memory holds one slice.
        listing = hashlib.sha256(_LISTING)
        whole = True
        folder = self.folder.name
        with ScratchRows() as unread:
            for listed in _slices(_digested(listing, _listed_messages(self.folder)), _LISTED_PER_LOOKUP):
                whole = (yield from self._known_again(dict(listed), context, unread, folder)) and whole
            for data in unread.in_key_order():
                name, mark = json.loads(data)
                whole = (yield from self._read(Path(os.fsdecode(name)), mark, context)) and whole
        if whole:  # committed after every message's batches: each of them is marked read whole
            yield SourceBatch(cursor={"listing": listing.hexdigest()}, document=self.folder.name)

    def _known_again(
        self, listed: dict[str, str | None], context: PullContext, unread: ScratchRows, folder: str
    ) -> Generator[SourceBatch, None, bool]:
        """One batch marking the `listed` messages (path: stat mark) read whole before but moved
        or touched since by their stat as it now stands; the others are set aside in `unread`,
        keyed by their date order. Returns whether each of them had a stat mark (a message known
        by it next time)."""
        known = context.processed_among([m for m in listed.values() if m])
        digests = {path: _digest_marker(path) for path, mark in listed.items() if mark not in known}
        known = context.processed_among([m for m in digests.values() if m]) if digests else set()
        again: list[str] = []
        for path, digest in digests.items():
            if digest is None or digest not in known:
                unread.add(_date_key(Path(path)), json.dumps([os.fsdecode(path), listed[path]]).encode())
            elif mark := listed[path]:  # the same message, touched or moved: known by its stat again
                again.append(mark)
        if again:
            # One commit for the slice: a folder restored or moved whole (new inodes, every
            # message touched) is marked again in a few transactions, not one per message.
            yield SourceBatch(document=folder, also_processed=tuple(again))
        return all(listed.values())

    def _read(self, path: Path, mark: str | None, context: PullContext) -> Generator[SourceBatch, None, bool]:
        """The batches of one message file; when all of it was new and read cleanly, its last
        batch also marks it read whole (by its digest, and by its stat `mark`), so the message
        and the marks are committed together. Returns whether it was marked by its stat."""
        try:
            data: bytes | OSError = path.read_bytes()
        except OSError as exc:
            data = exc
        # Only a message read in full in this pull is marked: when some of its inputs were
        # already processed, one of them may be quarantined, and `quarantine retry` must find
        # the message again.
        clean = True
        asked: set[str] = set()

        def skip_unless_new(key: str) -> bool:
            nonlocal clean
            # The batch before is held back (it may be the last), so this message's own keys
            # are known here, not by the state.
            known = key in asked or context.is_processed(key)
            asked.add(key)
            clean = clean and not known
            return known

        held: SourceBatch | None = None
        for batch in message_file_batches(
            path,
            self.mapping,
            self.name,
            self.config.senders,
            self.tenant,
            skip_unless_new,
            self.profiles,
            data,
        ):
            clean = clean and not batch.rejections
            if held is not None:
                yield held
            held = batch
        if not clean or not isinstance(data, bytes):
            if held is not None:
                yield held
            return False
        marks = (_read_marker(data), *((mark,) if mark else ()))
        if held is None:
            yield SourceBatch(input_key=marks[0], document=path.name, also_processed=marks[1:])
        else:
            yield dataclasses.replace(held, also_processed=(*held.also_processed, *marks))
        return mark is not None

    def fetch(self, po_number: str) -> list[SourceRecord]:
        """Every version of the PO found in the folder or the mailbox, oldest message first."""
        batches: Iterable[SourceBatch]
        if self.mailbox is not None:
            batches = self.mailbox.every_batch(self._parse_message)
        else:
            assert self.folder is not None
            batches = (
                batch
                for path in ordered_messages(self.folder)
                for batch in message_file_batches(
                    path, self.mapping, self.name, self.config.senders, self.tenant, profiles=self.profiles
                )
            )
        return [r for batch in batches for r in batch.records if r.po.po_number == po_number]

    def _parse_message(
        self, message: Message, name: str, fallback_id: str, skip: Callable[[str], bool]
    ) -> Iterator[SourceBatch]:
        return message_batches(
            message,
            self.mapping,
            source=self.name,
            senders=self.config.senders,
            tenant=self.tenant,
            name=name,
            fallback_id=fallback_id,
            skip=skip,
            profiles=self.profiles,
        )


def _load_profile(text: str, base_dir: Path, loaded: dict[str, CsvMapping]) -> CsvMapping:
    if text not in loaded:
        loaded[text] = load_mapping(text if is_mapping_name(text) else base_dir / text)
    return loaded[text]


_T = TypeVar("_T")

# Files listed, and looked up among the processed inputs, at a time.
_LISTED_PER_LOOKUP = 500


def message_files(folder: Path) -> Iterator[Path]:
    """The message files of a Maildir (`cur/` and `new/`) or of a plain folder (`*.eml`), as
    the folder lists them."""
    for _, entry in _message_entries(folder):
        yield Path(entry.path)


def _listed_messages(folder: Path) -> Iterator[tuple[str, str | None]]:
    """Each message file's path, as `message_files` lists them, with its stat mark (None when
    it could not be read): what a folder costs to look at, a listing and one stat per file."""
    for name, entry in _message_entries(folder):
        yield entry.path, _stat_marker(name, entry)


def _message_entries(folder: Path) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """The message files' directory entries, each with its name relative to `folder`."""
    if (folder / "cur").is_dir() or (folder / "new").is_dir():
        for sub in ("cur", "new"):
            if (folder / sub).is_dir():
                yield from _entries_in(folder / sub, suffix="", prefix=f"{sub}/")
    else:
        yield from _entries_in(folder, suffix=".eml", prefix="")


def _entries_in(folder: Path, suffix: str, prefix: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """The files of `folder` ending in `suffix` (any case), not hidden, as the folder lists them
    (os.scandir: a large folder is never held as one list of names)."""
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.lower().endswith(suffix) and not entry.name.startswith(".") and entry.is_file():
                yield prefix + entry.name, entry


_LISTING = b"folder-listing/1\n"


def _digested(digest: Any, listed: Iterable[tuple[str, str | None]]) -> Iterator[tuple[str, str | None]]:
    """`listed` as it comes, each entry fed into `digest` on the way."""
    for path, mark in listed:
        digest.update(f"{path}\x00{mark}\n".encode("utf-8", "surrogateescape"))
        yield path, mark


def _listing_digest(listed: Iterable[tuple[str, str | None]]) -> str:
    """The digest of a folder's listing, in its order: its files and each one's stat mark."""
    digest = hashlib.sha256(_LISTING)
    for _ in _digested(digest, listed):
        pass
    return digest.hexdigest()


def _slices(paths: Iterable[_T], size: int) -> Iterator[list[_T]]:
    pending = iter(paths)
    while chunk := list(itertools.islice(pending, size)):
        yield chunk


def ordered_messages(folder: Path) -> list[Path]:
    """Message files sorted by their Date header, then by file name; undated ones first."""
    return sorted(message_files(folder), key=_date_order)


def _date_order(path: Path) -> tuple[datetime, str, str]:
    return (_header_date(path) or EPOCH, path.name, str(path))


def _date_key(path: Path) -> bytes:
    """`_date_order` as bytes that compare alike: a fixed-width UTC time, the name, the path."""
    when, name, whole = _date_order(path)
    return b"\x00".join(
        part.encode("utf-8", "surrogatepass")
        for part in (when.isoformat(timespec="microseconds"), name, whole)
    )


def _read_marker(data: bytes) -> str:
    """The input key that says a message with this content was read whole."""
    return f"{hashlib.sha256(data).hexdigest()}|read"


def _digest_marker(path: str) -> str | None:
    try:
        with open(path, "rb") as stream:
            return _read_marker(stream.read())
    except OSError:
        return None


def _stat_marker(name: str, entry: os.DirEntry[str]) -> str | None:
    """The input key that says the file `name` (relative to the folder, with `/`), as it stands
    (same name, size, mtime, inode), was read whole.

    A file rewritten in place gets a new mtime; Maildir never rewrites a message (it renames it).
    """
    try:
        stat = entry.stat()
    except OSError:
        return None
    return f"{name}|{stat.st_size}|{stat.st_mtime_ns}|{stat.st_ino}|stat"


def _header_date(path: Path) -> datetime | None:
    try:
        with path.open("rb") as stream:
            headers = BytesParser(policy=MESSAGE_POLICY).parse(stream, headersonly=True)
    except OSError:
        return None
    return message_date(headers)
