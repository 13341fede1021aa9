"""Reading one e-mail message for the `email-csv` source: its sender's buyer id and mapping, and
a batch per CSV attachment (decoded, mapped to POs, keyed by message id and attachment SHA-256),
or a rejection naming what could not be read. The source (adapters/email_csv.py) lists and
orders the messages; IMAP and the folder both hand messages here.
"""

from __future__ import annotations

import csv
import email
import email.errors
import email.policy
import email.utils
import hashlib
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import TypeVar

from adapters.mail_messages import (
    CSV_CONTENT_TYPES,
    HEADER_ERRORS,
    message_date,
    message_order_batches,
)
from adapters.tabular import UndecodableError, decode_text, read_csv
from connector.errors import InputProblem
from connector.ports import (
    SourceBatch,
    SourceRecord,
)
from mappings.csv_mapping import CsvMapping, rows_to_pos

_log = logging.getLogger("po_connector.email_csv")
_T = TypeVar("_T")


def buyer_for(sender: str, senders: dict[str, str]) -> str:
    """Buyer id of a sender address: the configured one for the address or its (parent) domain,
    else the domain itself in lower case."""
    found = sender_entry(sender, senders)
    return found if found is not None else sender.strip().lower().rpartition("@")[2]


def sender_entry(sender: str, table: Mapping[str, _T]) -> _T | None:
    """The entry of a table keyed by lower-case sender address or (parent) domain, address first."""
    address = sender.strip().lower()
    if address in table:
        return table[address]
    labels = address.rpartition("@")[2].split(".")
    for start in range(len(labels)):
        candidate = ".".join(labels[start:])
        if candidate in table:
            return table[candidate]
    return None


def parse_message_file(
    path: Path,
    mapping: CsvMapping,
    *,
    source: str,
    senders: dict[str, str],
    tenant: str = "default",
    profiles: Mapping[str, CsvMapping] | None = None,
) -> list[SourceBatch]:
    """All batches of one `.eml` file: one per CSV attachment, or one for an unreadable file."""
    senders = {key.lower(): value for key, value in senders.items()}
    profiles = {key.lower(): value for key, value in (profiles or {}).items()}
    return list(message_file_batches(path, mapping, source, senders, tenant, profiles=profiles))


def message_file_batches(
    path: Path,
    mapping: CsvMapping,
    source: str,
    senders: dict[str, str],
    tenant: str,
    skip: Callable[[str], bool] = lambda key: False,
    profiles: Mapping[str, CsvMapping] | None = None,
    raw: bytes | OSError | None = None,
) -> Iterator[SourceBatch]:
    """The batches of one message file; `raw` is its content (or the error reading it) when
    the caller read it already."""
    try:
        if isinstance(raw, OSError):
            raise raw
        data = raw if raw is not None else path.read_bytes()
    except OSError as exc:
        key = _stat_key(path)
        if key is None or not skip(key):
            yield _unreadable(source, path.name, key, f"cannot read the file: {exc}")
        return

    def parse(message: Message, name: str, sha: str, ask: Callable[[str], bool]) -> Iterator[SourceBatch]:
        return message_batches(
            message,
            mapping,
            source=source,
            senders=senders,
            tenant=tenant,
            name=name,
            fallback_id=sha,
            skip=ask,
            profiles=profiles,
        )

    yield from message_order_batches(data, path.name, source=source, tenant=tenant, parse=parse, skip=skip)


def message_batches(
    message: Message,
    mapping: CsvMapping,
    *,
    source: str,
    senders: dict[str, str],
    tenant: str,
    name: str,
    fallback_id: str,
    skip: Callable[[str], bool] = lambda key: False,
    profiles: Mapping[str, CsvMapping] | None = None,
) -> Iterator[SourceBatch]:
    """Batches of a parsed message, one per CSV attachment not skipped.

    `name` names the message in documents; `fallback_id` stands in for a missing Message-ID
    (the SHA-256 of the whole message). `profiles` (lower-case sender address or domain ->
    mapping) overrides `mapping` for the senders it names.
    """
    try:
        message_id = str(message.get("Message-ID") or "").strip()
    except HEADER_ERRORS:
        message_id = ""
    message_key = message_id or fallback_id
    try:
        sender = email.utils.parseaddr(str(message.get("From") or ""))[1]
    except HEADER_ERRORS:
        # The sender picks the buyer and the mapping: a From no one can read is quarantined
        # with its value rather than guessed.
        raw_from = next((str(v) for k, v in message.raw_items() if k.lower() == "from"), "")
        problem = InputProblem(
            source, name, "", "From", raw_from[:200], "the From header is not a readable address"
        )
        key = f"{message_key}|from"
        if not skip(key):
            yield SourceBatch(rejections=[problem], input_key=key, document=name)
        return
    buyer_id = buyer_for(sender, senders) if sender else ""
    mapping = (sender_entry(sender, profiles) if sender and profiles else None) or mapping
    updated_at = message_date(message)
    keys: set[str] = set()
    found = False
    for index, part in enumerate(message.walk()):
        if part.is_multipart():
            continue
        filename = _filename(part)
        if part.get_content_type() not in CSV_CONTENT_TYPES and not filename.lower().endswith(".csv"):
            continue
        found = True
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        sha = hashlib.sha256(data).hexdigest()
        key = f"{message_key}|{sha}"
        if key in keys or skip(key):
            continue
        keys.add(key)
        document = f"{name}#{filename or f'part-{index}.csv'}"
        batch = csv_batch(
            data,
            mapping,
            source=source,
            document=document,
            input_key=key,
            tenant=tenant,
            buyer_id=buyer_id,
            updated_at=updated_at,
            charset=part.get_content_charset(),
        )
        yield with_origin(batch, message_id, sender)
    if not found:
        _log.debug("no CSV attachment in %s", name)


def _filename(part: Message) -> str:
    try:
        return (part.get_filename() or "").strip()
    except HEADER_ERRORS:
        return ""


def with_origin(batch: SourceBatch, message_id: str, sender: str) -> SourceBatch:
    """The batch's POs marked with the e-mail they came in, which their acknowledgement answers."""
    if not batch.records or not (message_id or sender):
        return batch
    update = {"origin_message": message_id[:998], "origin_sender": sender[:320]}
    batch.records = [
        SourceRecord(record.po.model_copy(update=update), record.raw, record.document)
        for record in batch.records
    ]
    return batch


def csv_batch(
    data: bytes,
    mapping: CsvMapping,
    *,
    source: str,
    document: str,
    input_key: str,
    tenant: str,
    buyer_id: str,
    updated_at: datetime | None,
    charset: str | None = None,
) -> SourceBatch:
    """The batch of one CSV payload: its POs and the problems of its rows."""
    try:
        text = decode_text(data, charset)
        table = read_csv(text)
    except (UndecodableError, csv.Error) as exc:
        return _unreadable(source, document, input_key, f"not a readable CSV file: {exc}")
    pos, problems = rows_to_pos(
        table,
        mapping,
        source=source,
        document=document,
        tenant=tenant,
        buyer_id_default=buyer_id,
        raw_sha256=hashlib.sha256(data).hexdigest(),
        updated_at=updated_at,
    )
    return SourceBatch(
        records=[SourceRecord(po, raw, document) for po, raw in pos],
        rejections=problems,
        input_key=input_key,
        document=document,
    )


def parse_csv_file(
    path: Path, mapping: CsvMapping, *, source: str, buyer_id: str, tenant: str = "default"
) -> SourceBatch:
    """The batch of a bare `.csv` file; its modification time stands in for a message date."""
    try:
        data = path.read_bytes()
        modified = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as exc:
        return _unreadable(source, path.name, None, f"cannot read the file: {exc}")
    key = f"{path.name}|{hashlib.sha256(data).hexdigest()}"
    return csv_batch(
        data,
        mapping,
        source=source,
        document=path.name,
        input_key=key,
        tenant=tenant,
        buyer_id=buyer_id,
        updated_at=modified,
    )


def _stat_key(path: Path) -> str | None:
    # Without the content, the file's identity is its name, size and modification time: a fixed
    # file gets a new key and is read again, an unchanged one is reported once.
    try:
        stat = path.stat()
    except OSError:
        return None
    return f"unreadable|{path.name}|{stat.st_size}|{stat.st_mtime_ns}"


def _unreadable(source: str, document: str, key: str | None, reason: str) -> SourceBatch:
    problem = InputProblem(source, document, "", "", "", reason)
    return SourceBatch(rejections=[problem], input_key=key, document=document)
