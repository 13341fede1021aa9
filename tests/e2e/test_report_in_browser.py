"""The HTML report of the example, loaded in headless Chromium as a finance lead opens it."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

from lxml import html as lxml_html

from tests.support.cli import copy_example, run_cli
from tests.support.shared import require_service

# Injected into a copy only: the report itself carries no script. It marks every cell whose
# content is wider than its box, at the window's width, in the DOM that Chromium then dumps.
_MEASURE = """<script>
document.body.setAttribute('data-measured', window.innerWidth);
const over = [];
for (const cell of document.querySelectorAll('td, th')) {
  if (cell.scrollWidth > cell.clientWidth + 1) over.push(cell.textContent.trim().slice(0, 60));
}
const out = document.createElement('pre'); out.id = 'overflow'; out.textContent = JSON.stringify(over);
document.body.appendChild(out);
</script></body>"""


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(browser: str, page: Path, tmp: Path) -> str:
    done = subprocess.run(
        [
            browser,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={tmp / 'profile'}",
            "--window-size=1280,2000",
            "--run-all-compositor-stages-before-draw",
            "--virtual-time-budget=2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=True,
    )
    return done.stdout


def test_report_reads_right_in_a_real_browser(tmp_path: Path) -> None:
    browser = _chromium()
    require_service(browser is not None, "chromium is not installed (apt-get install chromium)")
    assert browser is not None
    config = copy_example(tmp_path)
    assert run_cli("sync", "--config", str(config)).code == 0
    report = tmp_path / "report.html"
    assert run_cli("report", "--config", str(config), "--format", "html", "--out", str(report)).code == 0
    text = report.read_text(encoding="utf-8")
    assert "<script" not in text and "http://" not in text and "https://" not in text
    measured = tmp_path / "measured.html"
    # The page's CSP forbids scripts: the measuring copy drops it, the report keeps it.
    unlocked = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", text)
    assert unlocked != text
    measured.write_text(unlocked.replace("</body>", _MEASURE), encoding="utf-8")

    dom = lxml_html.fromstring(_dump_dom(browser, measured, tmp_path))
    assert dom.body.get("data-measured") == "1280"
    sections = [s.get("id") for s in dom.xpath("//section")]
    assert sections == ["action", "totals", "balances", "requests", "policy", "statuses", "rows"]
    asked = dom.xpath("//table[@data-section='requests']/tbody/tr")
    assert {row.get("data-state") for row in asked} == {"sent", "unaddressed"}  # Initech has no AP e-mail
    policy = {
        row.xpath("string(td[1])"): [row.xpath(f"string(td[{n}])") for n in (2, 3, 4)]
        for row in dom.xpath("//section[@id='policy']//tbody/tr")
    }
    assert policy["Hooli Inc"][0] == "no PO needed: invoiced without one"
    assert policy["Wayne Enterprises Ltd"][1].startswith("a PO without an end date covers every cycle")
    assert policy["Globex GmbH"][2] == "45[0-9]{8}"
    assert policy["Acme Corp"] == ["PO required", "a PO without an end date covers one billing cycle", "any"]
    assert dom.xpath("//section[@id='action']//tr/td")  # the example has things to do

    # Totals per currency equal the sum of the invoiced rows, and net + tax = gross.
    sums: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    for row in dom.xpath("//table[@data-section='rows']/tbody/tr"):
        gross = row.xpath("td[@data-part='gross']")[0].text_content().strip()
        if not gross:
            continue
        for part in ("net", "tax", "gross"):
            sums[row.get("data-currency")][part] += Decimal(
                row.xpath(f"td[@data-part='{part}']")[0].text_content() or 0
            )
    totals = dom.xpath("//table[@data-section='totals']/tbody/tr")
    assert {t.get("data-currency") for t in totals} == set(sums)
    for total in totals:
        shown = {
            p: Decimal(total.xpath(f"td[@data-part='{p}']")[0].text_content())
            for p in ("net", "tax", "gross")
        }
        assert shown == dict(sums[total.get("data-currency")])
        assert shown["net"] + shown["tax"] == shown["gross"]

    page_text = re.sub(r"\s+", " ", dom.text_content())
    for name in ("Acme Corp", "Globex GmbH", "Hooli Inc", "Wayne Enterprises Ltd"):
        assert name in page_text
    assert "unused_po" not in dom.xpath("string(//section[@id='statuses'])")
    assert dom.xpath("//section[@id='balances']//svg")

    assert dom.xpath("string(//pre[@id='overflow'])") == "[]"
