"""The EN 16931 and Peppol BIS Billing 3.0 business rules, run over a UBL document before it leaves.

A rules directory holds the two compiled Schematron stylesheets as CEN and OpenPEPPOL publish
them: ``EN16931-UBL-validation.xslt`` (the CEN rules, BR-*) and ``PEPPOL-EN16931-UBL.xslt`` (the
Peppol rules, PEPPOL-*, and the national ones). `EinvoiceRules` compiles both once per process
(a module-level cache keyed by the resolved directory, guarded by a lock), runs them with
SaxonC-HE (lxml only does XSLT 1.0) and returns the failed asserts of their SVRL reports.

The bundled Peppol stylesheet is SchXslt2 output, which puts every pattern in one mode and
marks a pattern as used by passing a tunnel parameter along ``next-match``: that is how it keeps
a second rule of the same pattern from firing on the same node. Its fallback template then
applies templates to the node's children, and tunnel parameters travel on through
``apply-templates``, so every descendant of a node a pattern's rule matched sees that pattern as
used too. As the document element matches the first rule of the main Peppol pattern, none of
the pattern's rules on child elements (R010 and R020 electronic addresses, R051 currency, R120
line net amount, R110/R111 line periods ...) ever fired, against what the .sch says (a pattern
is applied to each node on its own). When the stylesheet has this shape we correct it in
memory at load time, never in the file: the fallback template resets the parameter for the
children it visits. `EinvoiceRules.corrections` says what was corrected.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lxml import etree

CEN_STYLESHEET = "EN16931-UBL-validation.xslt"
PEPPOL_STYLESHEET = "PEPPOL-EN16931-UBL.xslt"

_XSL_NS = "http://www.w3.org/1999/XSL/Transform"
_SVRL_NS = "http://purl.oclc.org/dsdl/svrl"
_SCHXSLT_PATTERN = "Q{http://dmaus.name/ns/2023/schxslt}pattern"

_lock = threading.RLock()  # the cache and the processor; load() holds it while compiling
# One document at a time through the process's one SaxonC processor: its thread safety across
# Python threads is not documented, and a check takes milliseconds.
_run_lock = threading.Lock()
_processor: Any = None
_cache: dict[Path, EinvoiceRules] = {}


class RulesUnavailable(Exception):
    """The rules directory is missing a stylesheet, or a stylesheet does not compile."""


@dataclass(frozen=True)
class RuleFailure:
    """One failed assert: the rule's id, its flag (`fatal` or `warning`), its text, where it failed."""

    rule_id: str
    flag: str
    text: str
    location: str
    rule_set: str

    @property
    def fatal(self) -> bool:
        return self.flag != "warning"

    def __str__(self) -> str:
        return f"[{self.rule_id}] {self.text}"


def correct_schxslt_tunnel(stylesheet: bytes) -> tuple[bytes, int]:
    """The stylesheet with SchXslt2's fallback templates resetting the pattern tunnel for children.

    Returns the (possibly unchanged) stylesheet and how many ``apply-templates`` were corrected.
    """
    root = etree.fromstring(stylesheet, etree.XMLParser(resolve_entities=False, no_network=True))
    corrected = 0
    for template in root.iterchildren(f"{{{_XSL_NS}}}template"):
        if template.get("match") != "*" or not (template.get("mode") or "").startswith("group."):
            continue
        for apply in template.iterchildren(f"{{{_XSL_NS}}}apply-templates"):
            if any(p.get("name") == _SCHXSLT_PATTERN for p in apply.iterchildren(f"{{{_XSL_NS}}}with-param")):
                continue
            etree.SubElement(
                apply, f"{{{_XSL_NS}}}with-param", name=_SCHXSLT_PATTERN, tunnel="yes", select="()"
            )
            corrected += 1
    if not corrected:
        return stylesheet, 0
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8")), corrected


def _saxon() -> Any:
    global _processor
    with _lock:
        if _processor is None:
            from saxonche import PySaxonProcessor  # type: ignore[import-not-found]

            _processor = PySaxonProcessor(license=False)
        return _processor


class EinvoiceRules:
    """Both rule sets of one rules directory, compiled; `check(document)` lists what fails."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.corrections: list[str] = []
        processor = _saxon()
        compiler = processor.new_xslt30_processor()
        self._stylesheets: list[tuple[str, Any]] = []
        for rule_set, name in (("EN16931", CEN_STYLESHEET), ("PEPPOL", PEPPOL_STYLESHEET)):
            path = directory / name
            try:
                source = path.read_bytes()
            except OSError as exc:
                raise RulesUnavailable(f"cannot read {str(path)!r}: {exc.strerror or exc}") from exc
            try:
                fixed, count = correct_schxslt_tunnel(source)
            except etree.XMLSyntaxError as exc:
                raise RulesUnavailable(f"{str(path)!r} is not well-formed XML: {exc}") from exc
            if count:
                self.corrections.append(
                    f"{name}: pattern tunnel reset for children in {count} apply-templates (SchXslt2)"
                )
            try:
                if count:
                    executable = compiler.compile_stylesheet(stylesheet_text=fixed.decode("utf-8"))
                else:
                    executable = compiler.compile_stylesheet(stylesheet_file=str(path))
            except Exception as exc:  # saxonche raises PySaxonApiError, not importable portably
                raise RulesUnavailable(f"{str(path)!r} does not compile: {exc}") from exc
            if executable is None:
                raise RulesUnavailable(f"{str(path)!r} does not compile")
            self._stylesheets.append((rule_set, executable))

    @classmethod
    def load(cls, directory: Path) -> EinvoiceRules:
        """The compiled rules of `directory`, compiled on first use and then shared by the process."""
        key = directory.resolve()
        with _lock:
            rules = _cache.get(key)
            if rules is None:
                rules = cls(key)
                _cache[key] = rules
            return rules

    def check(self, document: bytes) -> list[RuleFailure]:
        """Every failed assert of both rule sets, fatal and warning; ValueError if it cannot be run."""
        processor = _saxon()
        failures: list[RuleFailure] = []
        with _run_lock:
            try:
                node = processor.parse_xml(xml_text=document.decode("utf-8"))
            except Exception as exc:
                raise ValueError(f"the document cannot be parsed for validation: {exc}") from exc
            reports = []
            for rule_set, executable in self._stylesheets:
                try:
                    reports.append((rule_set, executable.transform_to_string(xdm_node=node)))
                except Exception as exc:
                    raise ValueError(f"the {rule_set} rules failed to run: {exc}") from exc
        for rule_set, report in reports:
            failures.extend(parse_svrl(report, rule_set))
        return failures


def parse_svrl(report: str, rule_set: str) -> list[RuleFailure]:
    """The failed asserts (and errors the stylesheet caught) of one SVRL report."""
    root = etree.fromstring(report.encode("utf-8"), etree.XMLParser(resolve_entities=False, no_network=True))
    failures = []
    for element in root.iter(f"{{{_SVRL_NS}}}failed-assert"):
        text = " ".join("".join(element.findtext(f"{{{_SVRL_NS}}}text") or "").split())
        failures.append(
            RuleFailure(
                rule_id=element.get("id", ""),
                flag=element.get("flag", "fatal"),
                text=text,
                location=element.get("location", ""),
                rule_set=rule_set,
            )
        )
    for element in root.iter(f"{{{_SVRL_NS}}}error"):
        text = " ".join("".join(element.itertext()).split())
        failures.append(RuleFailure("svrl:error", "fatal", text, "", rule_set))
    return failures


def fatal(failures: list[RuleFailure]) -> list[RuleFailure]:
    """The failures that make a document invalid."""
    return [failure for failure in failures if failure.fatal]
