"""The EN 16931 and Peppol rules: compiled once, run over a document, and the SchXslt2 correction."""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from adapters.einvoice_rules import (
    PEPPOL_STYLESHEET,
    EinvoiceRules,
    RulesUnavailable,
    correct_schxslt_tunnel,
    parse_svrl,
)
from adapters.ubl import CAC_NS, CBC_NS
from tests.support.einvoice import rule_failures, rules, rules_dir

EXAMPLES = ("base-example.xml", "Vat-category-S.xml", "vat-category-E.xml", "vat-category-O.xml")


def example(name: str = "base-example.xml") -> etree._Element:
    return etree.parse(str(rules_dir() / "examples" / name)).getroot()


def serialise(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def without_buyer_endpoint() -> bytes:
    root = example()
    endpoint = root.find(f"{{{CAC_NS}}}AccountingCustomerParty/{{{CAC_NS}}}Party/{{{CBC_NS}}}EndpointID")
    assert endpoint is not None
    endpoint.getparent().remove(endpoint)  # type: ignore[union-attr]
    return serialise(root)


def failed_ids(report: str) -> set[str]:
    return {failure.rule_id for failure in parse_svrl(report, "PEPPOL")}


def test_rules_are_compiled_once_per_directory() -> None:
    first = rules()
    assert EinvoiceRules.load(rules_dir()) is first
    assert EinvoiceRules.load(rules_dir() / ".." / rules_dir().name) is first


@pytest.mark.parametrize("name", EXAMPLES)
def test_the_official_examples_pass_both_rule_sets(name: str) -> None:
    failures = rule_failures((rules_dir() / "examples" / name).read_bytes())
    assert [f for f in failures if f.fatal] == []


def test_the_bundled_peppol_stylesheet_is_corrected_at_load() -> None:
    source = (rules_dir() / PEPPOL_STYLESHEET).read_bytes()
    fixed, count = correct_schxslt_tunnel(source)
    assert count == 2  # the fallback template's two apply-templates (attributes and children)
    assert fixed != source
    assert correct_schxslt_tunnel(fixed) == (fixed, 0)  # idempotent
    assert any("SchXslt2" in note for note in rules().corrections)


def test_uncorrected_stylesheet_misses_a_child_element_rule_the_corrected_one_reports() -> None:
    from saxonche import PySaxonProcessor  # type: ignore[import-not-found]

    document = without_buyer_endpoint()
    processor = PySaxonProcessor(license=False)
    compiler = processor.new_xslt30_processor()
    as_shipped = compiler.compile_stylesheet(stylesheet_file=str(rules_dir() / PEPPOL_STYLESHEET))
    node = processor.parse_xml(xml_text=document.decode("utf-8"))
    # R010's context is AccountingCustomerParty/Party, a rule of the pattern the Invoice element
    # already matched: the shipped stylesheet suppresses it for every descendant.
    assert "PEPPOL-EN16931-R010" not in failed_ids(as_shipped.transform_to_string(xdm_node=node))
    fired = [f for f in rule_failures(document) if f.rule_id == "PEPPOL-EN16931-R010"]
    assert len(fired) == 1
    assert fired[0].fatal
    assert "AccountingCustomerParty" in fired[0].location


def test_corrected_rules_fire_on_line_level_context() -> None:
    root = example()
    net = root.find(f"{{{CAC_NS}}}InvoiceLine/{{{CBC_NS}}}LineExtensionAmount")
    assert net is not None
    net.text = str(Decimal(net.text or "0") + 5)  # qty x price no longer gives the line's net
    ids = {failure.rule_id for failure in rule_failures(serialise(root))}
    assert "PEPPOL-EN16931-R120" in ids


def test_a_failure_carries_id_flag_text_location_and_rule_set() -> None:
    root = example()
    seller_name = root.find(
        f"{{{CAC_NS}}}AccountingSupplierParty/{{{CAC_NS}}}Party/{{{CAC_NS}}}PartyLegalEntity/"
        f"{{{CBC_NS}}}RegistrationName"
    )
    assert seller_name is not None
    seller_name.getparent().remove(seller_name)  # type: ignore[union-attr]
    failures = {f.rule_id: f for f in rule_failures(serialise(root))}
    assert "BR-06" in failures
    assert failures["BR-06"].flag == "fatal"
    assert failures["BR-06"].rule_set == "EN16931"
    assert "Seller name" in failures["BR-06"].text
    assert failures["BR-06"].location.startswith("/")


def test_warnings_are_not_fatal() -> None:
    report = (
        '<svrl:schematron-output xmlns:svrl="http://purl.oclc.org/dsdl/svrl">'
        '<svrl:failed-assert id="R-W" flag="warning" location="/a"><svrl:text> careful\n now </svrl:text>'
        '</svrl:failed-assert><svrl:failed-assert id="R-F" location="/b"><svrl:text>no</svrl:text>'
        "</svrl:failed-assert></svrl:schematron-output>"
    )
    failures = parse_svrl(report, "X")
    assert [(f.rule_id, f.fatal, f.text) for f in failures] == [
        ("R-W", False, "careful now"),
        ("R-F", True, "no"),
    ]


def test_a_missing_stylesheet_is_named(tmp_path: Path) -> None:
    shutil.copy(rules_dir() / "EN16931-UBL-validation.xslt", tmp_path)
    with pytest.raises(RulesUnavailable, match=re.escape(PEPPOL_STYLESHEET)):
        EinvoiceRules.load(tmp_path)


def test_a_broken_stylesheet_is_named(tmp_path: Path) -> None:
    (tmp_path / "EN16931-UBL-validation.xslt").write_text("<xsl:stylesheet", encoding="utf-8")
    with pytest.raises(RulesUnavailable, match=re.escape("EN16931-UBL-validation.xslt")):
        EinvoiceRules.load(tmp_path)


def test_a_document_that_is_not_xml_cannot_be_checked() -> None:
    with pytest.raises(ValueError):
        rules().check(b"<Invoice")
