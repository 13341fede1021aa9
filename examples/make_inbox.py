"""Write the example inbox (examples/inbox/*.eml): POs of four buyers as e-mailed CSV files.

The .eml files are committed; run this again only to change the scenario:
    python examples/make_inbox.py [OUTPUT_DIR]
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

VENDOR = "orders@vendor.example"

ACME_CSV = """\
PO Number,Line,Supplier Part ID,Description,Quantity,Unit Price,Currency,Term Start,Term End,\
Payment Terms,PO Date,Buyer Name,Bill To Name,Bill To Street,Bill To City,Bill To Postal Code,\
Bill To Country
ACME-PO-1001,1,PLAN-PRO,Pro plan seat-month,600,40.00,USD,2026-01-01,2026-12-31,NET30,2026-01-05,\
Acme Corp,Acme Corp,100 Main St,Springfield,62701,US
ACME-PO-1002,1,ADDON-SSO,SSO add-on month,12,10.00,USD,2026-01-01,2026-12-31,NET30,2026-01-05,\
Acme Corp,Acme Corp,100 Main St,Springfield,62701,US
ACME-PO-1003,1,ADDON-SSO,SSO add-on month,12,10.00,USD,2026-01-01,2026-12-31,NET30,2026-01-05,\
Acme Corp,Acme Corp,100 Main St,Springfield,62701,US
"""

GLOBEX_HEADER = (
    "Bestellnummer;Revision;Pos;Artikel;Beschreibung;Menge;Einzelpreis;Währung;"
    "Leistungsbeginn;Leistungsende;Zahlungsbedingungen;Bestelldatum;Käufer\r\n"
)
GLOBEX_ORDER_CSV = GLOBEX_HEADER + (
    "4500012345;1;1;CLD-ENT-ANNUAL;Jahreslizenz für Müller;1;24.000,00;EUR;"
    "01.07.2026;30.06.2027;45 Tage netto;20.06.2026;Globex GmbH\r\n"
    "4500012399;1;1;ADDON-SSO;SSO-Zusatzmodul, monatlich;10;5,00;EUR;"
    "01.07.2026;30.06.2027;45 Tage netto;20.06.2026;Globex GmbH\r\n"
)
GLOBEX_CHANGE_CSV = GLOBEX_HEADER + (
    "4500012399;2;1;ADDON-SSO;SSO-Zusatzmodul, monatlich;24;5,00;EUR;"
    "01.07.2026;30.06.2027;45 Tage netto;20.06.2026;Globex GmbH\r\n"
)

INITECH_CSV = """\
PO Number,Line,Item,Description,Quantity,Unit Cost,Currency,Start Date,End Date,Payment Terms,\
Order Date,Buyer Name
INI-7781,1,PLAN-PRO,"Pro plan, seat-month",120,45.00,USD,01/01/2026,12/31/2026,Net 30,02/01/2026,\
Initech LLC
INI-7781,2,ADDON-SSO,SSO add-on month,12,10.00,USD,01/01/2026,12/31/2026,Net 30,02/01/2026,\
Initech LLC
INI-7781,3,SUPPORT-PREMIUM,Premium support month,ten,25.00,USD,01/01/2026,12/31/2026,Net 30,\
02/01/2026,Initech LLC
"""

WAYNE_CSV = """\
PO Number,Line,Supplier Part ID,Description,Quantity,Unit Price,Currency,Term Start,Term End,\
Payment Terms,PO Date,Buyer Name,Bill To Name,Bill To Street,Bill To City,Bill To Postal Code,\
Bill To Country
WE-PO-0077,1,PLAN-PRO,Pro plan seat-month,300,32.00,GBP,,,NET30,2026-09-20,\
Wayne Enterprises Ltd,Wayne Enterprises Ltd,1 Wayne Tower,London,EC1A 1BB,GB
WE-PO-0077,2,WE-TRAIN-ADMIN,Administrator training day,2,900.00,GBP,,,NET30,\
2026-09-20,Wayne Enterprises Ltd,Wayne Enterprises Ltd,1 Wayne Tower,London,EC1A 1BB,GB
"""

UMBRELLA_TSV = (
    "PO Number\tLine\tSKU\tDescription\tQuantity\tUnit Price\tCurrency\tTerm Start\tTerm End\t"
    "Payment Terms\tPO Date\tBuyer Name\tStatus\n"
    "UMB-2026-044\t1\tPLAN-ENT\tEnterprise plan month\t12\t1,500.00\tUSD\t2026-01-01\t2026-12-31\t"
    "60 days\t2026-03-01\tUmbrella Health\tApproved\n"
)


def _message(sender: str, when: datetime, subject: str, body: str, message_id: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = VENDOR
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    message["Message-ID"] = message_id
    # Keep the files 7-bit clean: non-ASCII bodies go quoted-printable.
    message.set_content(body, cte="7bit" if body.isascii() else "quoted-printable")
    return message


def _finish(message: EmailMessage, number: int) -> bytes:
    message.set_boundary(f"=_example-po-{number:02d}")
    return message.as_bytes()


def build() -> dict[str, bytes]:
    """File name -> bytes of each example message."""
    central = timezone(timedelta(hours=-6))
    cest = timezone(timedelta(hours=2))
    eastern = timezone(timedelta(hours=-5))
    files: dict[str, bytes] = {}

    acme = _message(
        "Acme Purchasing <purchasing@acme.example>",
        datetime(2026, 1, 5, 9, 15, tzinfo=central),
        "Purchase orders ACME-PO-1001, ACME-PO-1002, ACME-PO-1003",
        "Hello,\n\nplease find our purchase orders for 2026 attached.\n\nAcme Purchasing\n",
        "<20260105091500.1001@acme.example>",
    )
    acme.add_attachment(ACME_CSV, subtype="csv", filename="acme-pos-2026-01-05.csv")
    files["acme-purchase-orders.eml"] = _finish(acme, 1)

    order = _message(
        "Globex Einkauf <einkauf@globex.example>",
        datetime(2026, 6, 20, 10, 30, tzinfo=cest),
        "Bestellung 4500012345, 4500012399",
        "Guten Tag,\n\nanbei unsere Bestellungen.\n\nMit freundlichen Grüßen\nGlobex Einkauf\n",
        "<4500012345.20260620103000@globex.example>",
    )
    order.add_attachment(
        GLOBEX_ORDER_CSV.encode("cp1252"),
        maintype="application",
        subtype="vnd.ms-excel",
        filename="Bestellung_4500012345_4500012399.csv",
    )
    files["globex-bestellung.eml"] = _finish(order, 2)

    change = _message(
        "Globex Einkauf <einkauf@globex.example>",
        datetime(2026, 10, 15, 14, 0, tzinfo=cest),
        "Bestelländerung 4500012399",
        "Guten Tag,\n\nanbei die Änderung unserer Bestellung 4500012399.\n\nGlobex Einkauf\n",
        "<4500012399.20261015140000@globex.example>",
    )
    change.add_attachment(
        GLOBEX_CHANGE_CSV.encode("cp1252"),
        maintype="application",
        subtype="vnd.ms-excel",
        filename="Bestellaenderung_4500012399.csv",
    )
    # Sorts before globex-bestellung.eml by name: only the Date header puts it after.
    files["globex-aenderung.eml"] = _finish(change, 3)

    initech = _message(
        "Initech AP <ap@initech.example>",
        datetime(2026, 2, 1, 8, 0, tzinfo=eastern),
        "PO INI-7781",
        "Hi,\n\nPO INI-7781 attached.\n\nInitech Accounts Payable\n",
        "<INI-7781.20260201080000@initech.example>",
    )
    initech.add_attachment(
        b"\xef\xbb\xbf" + INITECH_CSV.encode("utf-8"),
        maintype="text",
        subtype="csv",
        filename="INI-7781.csv",
        params={"charset": "utf-8"},
    )
    files["initech-po.eml"] = _finish(initech, 4)

    umbrella = _message(
        "Umbrella Procurement <procurement@umbrella.example>",
        datetime(2026, 3, 1, 12, 0, tzinfo=eastern),
        "Purchase order UMB-2026-044",
        "Hello,\n\nattached is PO UMB-2026-044 and our delivery notes.\n\nUmbrella Procurement\n",
        "<UMB-2026-044.20260301120000@umbrella.example>",
    )
    umbrella.add_attachment(
        UMBRELLA_TSV.encode("utf-8"),
        maintype="application",
        subtype="octet-stream",
        filename="UMB-2026-044.csv",
    )
    umbrella.add_attachment(
        "Deliver invoices to ap@umbrella.example; quote the PO number.\n",
        filename="delivery-notes.txt",
    )
    files["umbrella-po.eml"] = _finish(umbrella, 5)

    wayne = _message(
        "Wayne Procurement <procurement@wayne.example>",
        datetime(2026, 9, 20, 11, 0, tzinfo=timezone.utc),
        "Purchase order WE-PO-0077",
        "Hello,\n\nplease find PO WE-PO-0077 attached.\n\nWayne Procurement\n",
        "<WE-PO-0077.20260920110000@wayne.example>",
    )
    wayne.add_attachment(WAYNE_CSV, subtype="csv", filename="WE-PO-0077.csv")
    files["wayne-po.eml"] = _finish(wayne, 6)
    return files


def main() -> None:
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "inbox"
    target.mkdir(parents=True, exist_ok=True)
    for name, data in build().items():
        (target / name).write_bytes(data)
        print(target / name)


if __name__ == "__main__":
    main()
