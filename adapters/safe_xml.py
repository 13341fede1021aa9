"""Parse XML from outside without loading DTDs, touching the network or expanding entities.

cXML and UBL documents arrive from buyers' systems, so they are hostile input. Real cXML carries
`<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/...">`: that is accepted, and the DTD is never
fetched. A DOCTYPE with an internal subset (where entities are declared: XXE, billion laughs) is
refused by a scan of the prolog *before* the parser sees the document, so no declared entity is
ever resolved, read or expanded. The parsed tree is checked once more for declarations, in case
an encoding the scan does not understand hid them.
"""

from __future__ import annotations

import codecs

from lxml import etree

from connector.errors import InputError, InputProblem

ENTITIES_REFUSED = "entity declarations are not allowed"
SUBSET_REFUSED = "a DOCTYPE internal subset is not allowed"

# Byte-order marks, then the first bytes of "<?" without one (XML 1.0 appendix F); UTF-32 first,
# as its little-endian mark starts with UTF-16's.
_MARKED_ENCODINGS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
    (b"<\0\0\0", "utf-32-le"),
    (b"\0\0\0<", "utf-32-be"),
    (b"<\0", "utf-16-le"),
    (b"\0<", "utf-16-be"),
)


def safe_parser() -> etree.XMLParser:
    """An lxml parser that loads no DTD, resolves no entity and never uses the network."""
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        attribute_defaults=False,
        huge_tree=False,
    )


def parse_xml(data: bytes, *, source: str, document: str) -> etree._Element:
    """The root element of `data`, or InputError naming the document and what is wrong."""

    def refuse(field: str, value: str, reason: str) -> InputError:
        return InputError(InputProblem(source, document, "", field, value, reason))

    if not data.strip():
        raise refuse("document", "", "the document is empty")
    refusal = _internal_subset_refusal(_prolog_text(data))
    if refusal:
        raise refuse("DOCTYPE", "", refusal)
    try:
        root = etree.fromstring(data, safe_parser())
    except etree.XMLSyntaxError as exc:
        raise refuse("document", "", f"not well-formed XML: {exc}") from None
    internal = root.getroottree().docinfo.internalDTD
    if internal is not None:
        if any(True for _ in internal.iterentities()):
            raise refuse("DOCTYPE", "", ENTITIES_REFUSED)
        if any(True for _ in internal.iterelements()):
            raise refuse("DOCTYPE", "", SUBSET_REFUSED)
    return root


def _prolog_text(data: bytes) -> str:
    """The document as text good enough to read its markup before the root element."""
    codec = "latin-1"  # every other encoding XML allows keeps ASCII markup bytes as they are
    for prefix, name in _MARKED_ENCODINGS:
        if data.startswith(prefix):
            codec = name
            break
    return data.decode(codec, errors="replace").lstrip("\ufeff")


def _internal_subset_refusal(text: str) -> str:
    """Why the DOCTYPE of `text` is refused, or "" when it has no internal subset."""
    position = 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if text.startswith("<?", position):
            end = text.find("?>", position)
        elif text.startswith("<!--", position):
            end = text.find("-->", position)
        elif text.startswith("<!DOCTYPE", position):
            return _doctype_refusal(text, position + len("<!DOCTYPE"))
        else:
            return ""
        if end < 0:
            return ""
        position = end + 2


def _doctype_refusal(text: str, position: int) -> str:
    quote = ""
    for index in range(position, len(text)):
        char = text[index]
        if quote:
            if char == quote:
                quote = ""
        elif char in "\"'":
            quote = char
        elif char == ">":
            return ""
        elif char == "[":
            return ENTITIES_REFUSED if "<!ENTITY" in text[index:] else SUBSET_REFUSED
    return ""
