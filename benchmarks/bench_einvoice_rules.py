"""EN 16931 / Peppol validation cost: compiling the rules, checking a document, and a sink write.

Figures:

- compile: starting the SaxonC processor, then compiling the CEN stylesheet and the Peppol one
  (with its SchXslt2 correction), once each as a process does;
- check: median time of `EinvoiceRules.check` (both rule sets, SVRL parsed) for invoices of 1,
  10 and 100 lines at mixed rates;
- write: median time per invoice of `UblFilesSink.push` (render, validate, fsynced publish) with
  validation on and off, against a bare lxml serialise + write + fsync of the same document
  (parsed before the clock starts), and the ratios.

    python benchmarks/bench_einvoice_rules.py [--rules DIR] [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lxml import etree

import adapters.einvoice_rules as einvoice_rules
from adapters.einvoice_rules import EinvoiceRules
from adapters.ubl import render_invoice
from adapters.ubl_files import UblFilesConfig, UblFilesSink
from connector.model import InvoicePlan
from connector.ports import AdapterContext
from tests.support.factories import make_buyer, make_seller, make_taxed_plan, vat

DEFAULT_RULES = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "en16931"
RATES = (vat("19"), vat("7"), vat("0", "Z"))


def plan_of(lines: int, n: int = 1) -> InvoicePlan:
    taxes = tuple(RATES[index % len(RATES)] for index in range(lines))
    return make_taxed_plan(n, taxes=taxes, buyer=make_buyer("FR"), bill_to=None)


def median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def bare_write(directory: Path, root: etree._Element, name: str) -> None:
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    with open(directory / name, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=DEFAULT_RULES)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    rules_dir: Path = args.rules
    runs: int = args.runs

    startup = timed(einvoice_rules._saxon)
    started = time.perf_counter()
    rules = EinvoiceRules(rules_dir.resolve())
    both = (time.perf_counter() - started) * 1000
    print(f"compile  saxon processor start {startup:8.1f} ms")
    print(f"compile  CEN + Peppol rules    {both:8.1f} ms  ({'; '.join(rules.corrections)})")
    processor = einvoice_rules._saxon()
    compiler = processor.new_xslt30_processor()
    cen = timed(
        lambda: compiler.compile_stylesheet(stylesheet_file=str(rules_dir / "EN16931-UBL-validation.xslt"))
    )
    print(f"compile  CEN alone (again)     {cen:8.1f} ms")

    supplier = make_seller()
    for lines in (1, 10, 100):
        document = render_invoice(plan_of(lines), supplier)
        failures = [f for f in rules.check(document) if f.fatal]
        assert not failures, failures
        per_doc = median_ms(lambda document=document: rules.check(document), runs)  # type: ignore[misc]
        print(f"check    {lines:3d} lines ({len(document) / 1024:6.1f} KiB)  {per_doc:8.2f} ms per document")

    with tempfile.TemporaryDirectory() as temp:
        base = Path(temp)
        for label, rules_setting in (("on", rules_dir), ("off", None)):
            out = base / f"sink-{label}"
            config = UblFilesConfig(name="files", directory=out, rules_dir=rules_setting)
            sink = UblFilesSink(config, AdapterContext(supplier=supplier))
            plans = [plan_of(10, n) for n in range(1, runs + 1)]
            times = []
            for plan in plans:
                started = time.perf_counter()
                sink.push(plan)
                times.append(time.perf_counter() - started)
            sink_ms = statistics.median(times) * 1000
            if label == "on":
                with_validation = sink_ms
            else:
                without_validation = sink_ms
        bare_dir = base / "bare"
        bare_dir.mkdir()
        roots = [etree.fromstring(render_invoice(plan_of(10, n), supplier)) for n in range(1, runs + 1)]
        times = []
        for index, root in enumerate(roots):
            started = time.perf_counter()
            bare_write(bare_dir, root, f"INV-{index}.xml")
            times.append(time.perf_counter() - started)
        bare_ms = statistics.median(times) * 1000
    print(f"write    sink push, validation on   {with_validation:8.2f} ms per 10-line invoice")
    print(f"write    sink push, validation off  {without_validation:8.2f} ms")
    print(f"write    bare lxml serialise+write  {bare_ms:8.2f} ms")
    print(f"ratio    sink with validation / bare     {with_validation / bare_ms:6.1f}x")
    print(f"ratio    sink without validation / bare  {without_validation / bare_ms:6.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
