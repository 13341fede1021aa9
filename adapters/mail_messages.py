"""One e-mail message's purchase orders, read alike from a folder of .eml files and from IMAP.

A message gives one batch per CSV attachment (parsed by the caller's CSV mapping), one per cXML
OrderRequest or UBL Order attachment, or one rejection when it is unreadable or carries no order
attachment, so it is reported once and not silently. Header values the e-mail package cannot
read are bad input, never a crash.
"""

from __future__ import annotations

import email
import email.errors
import email.headerregistry
import email.policy
import email.utils
import functools
import hashlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from typing import Any

from adapters.cxml_order import parse_order_request, stored_text
from adapters.safe_xml import parse_xml
from adapters.ubl_order import ubl_batch, ubl_kind
from connector.errors import InputError, InputProblem
from connector.ports import SourceBatch, SourceRecord

CXML_CONTENT_TYPES = frozenset({"text/xml", "application/xml", "application/cxml+xml"})
CSV_CONTENT_TYPES = frozenset({"text/csv", "application/vnd.ms-excel"})
# The e-mail library raises AttributeError too on some malformed headers (a group inside a
# group in From), so every one of these is a bad header, not a bug of ours.
HEADER_ERRORS = (ValueError, TypeError, LookupError, AttributeError, email.errors.MessageError)
EPOCH = datetime.min.replace(tzinfo=UTC)  # sorts undated messages first

# (message, name, fallback_id, skip) -> the CSV batches of that message.
MessageParser = Callable[[Message, str, str, Callable[[str], bool]], Iterable[SourceBatch]]


class RereadingPolicy(email.policy.EmailPolicy):
    """The e-mail package's default policy, parsing a header value once however often it is read.

    The default policy parses a header each time it is read, and the parser and the helpers
    read Content-Type some twenty times per message: that was a third of reading an inbox.
    A parsed header is immutable, so one parse per (name, value) gives the same answers, and a
    value that does not parse still raises on every read.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):  # already a header object
            return value
        return _parsed_header(self, name, value)


@functools.lru_cache(maxsize=256)
def _parsed_header(policy: email.policy.EmailPolicy, name: str, value: str) -> Any:
    return email.policy.EmailPolicy.header_fetch_parse(policy, name, value)


class HeaderClasses(email.headerregistry.HeaderRegistry):
    """The e-mail package's header registry, making each header class once.

    The stock registry makes a new class on every header it parses: about 15 µs each, and
    classes are freed only by the cycle collector, so a large inbox's memory grew with them.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[type, type] = {}

    def __getitem__(self, name: str) -> type:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = type("_" + kind.__name__, (kind, self.base_class), {})
        return made


MESSAGE_POLICY = RereadingPolicy(header_factory=HeaderClasses())


def message_order_batches(
    raw: bytes,
    name: str,
    *,
    source: str,
    tenant: str,
    parse: MessageParser,
    skip: Callable[[str], bool],
) -> Iterator[SourceBatch]:
    """Batches of one raw message not skipped: its CSV and cXML attachments, or one rejection
    when it is unreadable or has no order attachment (so it is reported once, not silently)."""
    asked: list[str] = []

    def asking(key: str) -> bool:
        asked.append(key)
        return skip(key)

    sha = hashlib.sha256(raw).hexdigest()
    message = email.message_from_bytes(raw, policy=MESSAGE_POLICY)
    if not message.keys():
        key = f"{sha}|unreadable"
        if not skip(key):
            yield _rejection(source, name, key, "message", "not an e-mail message (no headers)")
        return
    yield from parse(message, name, sha, asking)
    yield from cxml_attachment_batches(
        message, source=source, tenant=tenant, name=name, fallback_id=sha, skip=asking
    )
    if not asked:
        key = f"{message_key(message, sha)}|no-attachment"
        if not skip(key):
            yield _rejection(source, name, key, "attachment", "no CSV or cXML attachment")


def header_date(headers: bytes) -> datetime | None:
    """The Date header of raw header bytes in UTC, or None when absent or malformed."""
    try:
        parsed = BytesParser(policy=MESSAGE_POLICY).parsebytes(headers, headersonly=True)
    except HEADER_ERRORS:
        return None
    return message_date(parsed)


def message_date(message: Message) -> datetime | None:
    """A message's Date header in UTC (a date without a zone is taken as UTC), or None."""
    try:
        raw = message.get("Date")
        if raw is None:
            return None
        when = email.utils.parsedate_to_datetime(str(raw))
    except HEADER_ERRORS:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).astimezone(UTC)


def message_key(message: Message, fallback_id: str) -> str:
    """The message's identity in input keys: its Message-ID, else `fallback_id`."""
    try:
        message_id = str(message.get("Message-ID") or "").strip()
    except HEADER_ERRORS:
        message_id = ""
    return message_id or fallback_id


def _is_cxml_part(part: Message) -> bool:
    try:
        filename = (part.get_filename() or "").strip().lower()
    except HEADER_ERRORS:
        filename = ""
    if part.get_content_type() in CSV_CONTENT_TYPES or filename.endswith(".csv"):
        return False
    return part.get_content_type() in CXML_CONTENT_TYPES or filename.endswith((".xml", ".cxml"))


def cxml_attachment_batches(
    message: Message,
    *,
    source: str,
    tenant: str,
    name: str,
    fallback_id: str,
    skip: Callable[[str], bool] = lambda key: False,
) -> Iterator[SourceBatch]:
    """One batch per cXML attachment not skipped, keyed by the message id and its SHA-256.

    The buyer is the document's From identity, as for the `cxml` source; test orders
    (`deploymentMode="test"`) are refused.
    """
    base = message_key(message, fallback_id)
    for index, part in enumerate(message.walk()):
        if part.is_multipart() or not _is_cxml_part(part):
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        key = f"{base}|{hashlib.sha256(data).hexdigest()}"
        if skip(key):
            continue
        try:
            filename = (part.get_filename() or "").strip()
        except HEADER_ERRORS:
            filename = ""
        document = f"{name}#{filename or f'part-{index}.xml'}"
        yield _cxml_batch(data, source=source, tenant=tenant, document=document, key=key)


def _cxml_batch(data: bytes, *, source: str, tenant: str, document: str, key: str) -> SourceBatch:
    try:
        root = parse_xml(data, source=source, document=document)
        if ubl_kind(root) is not None:
            # A UBL OrderCancellation here finds no earlier order (a message stands alone):
            # it is refused naming the order; buyers cancelling by e-mail use a cxml folder.
            return ubl_batch(data, root, source=source, document=document, tenant=tenant, input_key=key)
        order = parse_order_request(data, source=source, document=document, tenant=tenant)
    except InputError as exc:
        return SourceBatch(rejections=[exc.problem], input_key=key, document=document)
    if order.deployment_mode == "test":
        return _rejection(source, document, key, "Request@deploymentMode", "a test order", value="test")
    records = []
    if order.po is not None:
        raw = stored_text(data)
        records.append(SourceRecord(po=order.po, raw=raw, document=document))
    return SourceBatch(records=records, rejections=list(order.problems), input_key=key, document=document)


def _rejection(
    source: str, document: str, key: str, field: str, reason: str, *, value: str = ""
) -> SourceBatch:
    problem = InputProblem(source, document, "", field, value, reason)
    return SourceBatch(rejections=[problem], input_key=key, document=document)
