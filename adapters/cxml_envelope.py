"""The cXML envelope, as received and as answered: the Header's credentials (never the secret),
a document's text in the encoding it declares with every SharedSecret masked, and cXML Response
documents with their fresh payloadIDs.

The Sender's SharedSecret is never kept here: it must not reach logs or the state database
(`redact_shared_secrets` masks it in raw text). Authentication reads it in the receiver.
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from lxml import etree

from adapters.xml_fields import element_text
from connector.redact import MASK

CXML_VERSION = "1.2.050"
CXML_DTD_URL = f"http://xml.cxml.org/schemas/cXML/{CXML_VERSION}/cXML.dtd"
_SHARED_SECRET = re.compile(r"(<SharedSecret\b[^>]*>).*?(</SharedSecret\s*>)", re.DOTALL)
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"


@dataclass(frozen=True)
class Credential:
    """A cXML Credential without its secret: the domain and the identity."""

    domain: str
    identity: str

    def matches(self, domain: str, identity: str) -> bool:
        """True for the same identity in the same domain (cXML domains ignore case)."""
        return self.domain.casefold() == domain.casefold() and self.identity == identity


@dataclass(frozen=True)
class CxmlHeader:
    """The cXML envelope: payloadID, timestamp and the From/To/Sender credentials."""

    payload_id: str
    timestamp_text: str
    from_credentials: tuple[Credential, ...]
    to_credentials: tuple[Credential, ...]
    sender_credentials: tuple[Credential, ...]
    user_agent: str = ""

    @property
    def from_identity(self) -> str:
        """The identity of the first From credential: the buyer, as the buyer names itself."""
        return self.from_credentials[0].identity if self.from_credentials else ""


def read_header(root: etree._Element) -> CxmlHeader:
    """The envelope of a parsed cXML document; missing parts are empty, nothing is validated."""

    def credentials(party: str) -> tuple[Credential, ...]:
        return tuple(
            Credential(element.get("domain", "").strip(), element_text(element.find("Identity")))
            for element in root.iterfind(f"Header/{party}/Credential")
        )

    return CxmlHeader(
        payload_id=root.get("payloadID", "").strip(),
        timestamp_text=root.get("timestamp", "").strip(),
        from_credentials=credentials("From"),
        to_credentials=credentials("To"),
        sender_credentials=credentials("Sender"),
        user_agent=element_text(root.find("Header/Sender/UserAgent")),
    )


def redact_shared_secrets(text: str) -> str:
    """The document text with every SharedSecret's content masked, for storing or showing."""
    return _SHARED_SECRET.sub(rf"\g<1>{MASK}\g<2>", text)


_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*\bencoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


def document_text(data: bytes) -> str:
    """A cXML document's bytes as text, in the encoding it declares (BOM, then XML declaration)."""
    for bom, codec in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if data.startswith(bom):
            return data.decode(codec, errors="replace")
    declared = _XML_ENCODING.match(data)
    try:
        return data.decode(declared.group(1).decode("ascii") if declared else "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def stored_text(data: bytes) -> str:
    """What may be stored of a received document: its text with every SharedSecret masked."""
    return redact_shared_secrets(document_text(data))


def new_payload_id() -> str:
    """A fresh, globally unique cXML payloadID (time.process-random@host form)."""
    return f"{time.time_ns() // 1_000_000}.{uuid.uuid4().hex}@po-connector"


def render_response(payload_id: str | None, code: int, text: str, *, detail: str = "") -> bytes:
    """A cXML Response with one Status, valid against the cXML 1.2.050 DTD.

    `payload_id` is the Response's own payloadID (a fresh one when None); `text` is the short
    status text (``OK``, ``Bad Request``) and `detail` the optional human explanation.
    """
    root = etree.Element(
        "cXML",
        version=CXML_VERSION,
        payloadID=payload_id or new_payload_id(),
        timestamp=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    root.set(_XML_LANG, "en")
    response = etree.SubElement(root, "Response")
    status = etree.SubElement(response, "Status", code=str(code), text=text)
    status.set(_XML_LANG, "en")
    if detail:
        status.text = detail
    return bytes(
        etree.tostring(
            root,
            xml_declaration=True,
            encoding="UTF-8",
            doctype=f'<!DOCTYPE cXML SYSTEM "{CXML_DTD_URL}">',
        )
    )
