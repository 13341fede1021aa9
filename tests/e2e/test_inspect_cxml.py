"""`inspect` on cXML OrderRequest documents, as support staff use it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support.cli import run_cli
from tests.support.shared import shared_fixture


def test_inspect_prints_the_canonical_po_of_an_order_request() -> None:
    result = run_cli("inspect", str(shared_fixture("cxml/OrderRequest-generic.xml")))
    assert result.code == 0, result.stderr
    [po] = [json.loads(line) for line in result.stdout.splitlines()]
    assert po["po_number"] and po["currency"] == "EUR"
    assert len(po["lines"]) == 2
    for line in po["lines"]:
        assert line["sku"] and line["quantity"] and line["unit_price"]["currency"] == "EUR"
    assert po["ship_to"] and po["bill_to"]


def test_inspect_refuses_an_xxe_document_without_reading_the_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CANARY", encoding="utf-8")
    document = tmp_path / "evil.xml"
    document.write_text(
        f'<?xml version="1.0"?>\n<!DOCTYPE cXML [<!ENTITY x SYSTEM "file://{secret}">]>\n'
        '<cXML payloadID="1" timestamp="2026-01-01T00:00:00Z"><Request><OrderRequest>'
        '<OrderRequestHeader orderID="&x;"/></OrderRequest></Request></cXML>\n',
        encoding="utf-8",
    )
    result = run_cli("inspect", str(document))
    assert result.code == 1
    assert "entity" in result.stderr.lower()
    assert "TOP-SECRET-CANARY" not in result.stdout + result.stderr
