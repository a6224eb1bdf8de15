"""Build the binary documents of the demo knowledge base (Kestrel Broadband's help centre).

The text formats (Markdown, plain text, HTML, CSV) in ``demo/knowledge/`` are written by hand. This script
writes the PDF, DOCX and XLSX documents from the text below, so they can be rebuilt and reviewed as text.
Output is byte-for-byte reproducible: fixed creation dates and fixed timestamps inside the ZIP containers.

Needs ``fpdf2==2.8.9`` (PDF writer, a development-only dependency), ``python-docx`` and ``openpyxl``.

Usage::

    .venv/bin/python demo/build_demo_kb.py [OUTPUT_DIR]
"""

from __future__ import annotations

import datetime as dt
import io
import sys
import zipfile
from pathlib import Path

FIXED_TIME = dt.datetime(2026, 1, 15, 9, 0, 0, tzinfo=dt.UTC)
OUT = Path(__file__).resolve().parent / "knowledge"

# A page is a list of blocks: ("h1"|"h2"|"p"|"li", text). Each inner list is one PDF page.
ROUTER_GUIDE: list[list[tuple[str, str]]] = [
    [
        ("h1", "Kestrel Hub 3 router: setup guide"),
        (
            "p",
            "This guide explains how to set up the Kestrel Hub 3, the Wi-Fi 6 router included with every Kestrel "
            "Broadband plan, and what its lights mean.",
        ),
        ("h2", "What is in the box"),
        ("li", "The Kestrel Hub 3 router and its 12 volt power supply."),
        ("li", "A 2 metre yellow Ethernet cable to connect the router to the fibre ONT."),
        ("li", "A quick start card with your Wi-Fi name and password."),
        ("h2", "Connecting the router"),
        (
            "p",
            "Plug the yellow Ethernet cable into the port marked LAN 1 on the ONT and into the red WAN port on the "
            "back of the Kestrel Hub 3. Connect the power supply and press the power button. The first start takes "
            "up to 10 minutes while the router downloads its settings; do not switch it off during this time.",
        ),
    ],
    [
        ("h1", "Connecting to Wi-Fi"),
        (
            "p",
            "Your Wi-Fi network name and password are printed on the sticker on the underside of the router and on "
            "the quick start card. The router broadcasts two networks: the 2.4 GHz network called Kestrel-XXXX and "
            "the 5 GHz network called Kestrel-XXXX-5G, where XXXX are the last four characters of the serial number.",
        ),
        (
            "p",
            "The 5 GHz network is faster but has a shorter range; the 2.4 GHz network reaches further through walls.",
        ),
        ("h2", "WPS button"),
        (
            "p",
            "To connect a printer or another device without typing the password, press the WPS button on the side "
            "of the router for 2 seconds, then press the WPS button on your device within 2 minutes.",
        ),
        ("h2", "The router admin page"),
        (
            "p",
            "Advanced settings are on the router's admin page. Open a browser on a connected device and go to "
            "192.168.50.1. The admin password is printed on the sticker under the router, below the Wi-Fi password.",
        ),
    ],
    [
        ("h1", "What the lights mean"),
        ("li", "Solid white: the router is connected to the internet and working normally."),
        ("li", "Flashing white: the router is starting up. Wait up to 10 minutes."),
        (
            "li",
            "Pulsing amber: the router is installing a firmware update. Do not unplug it; this takes about 5 minutes.",
        ),
        ("li", "Solid amber: the router is working but has no internet connection. Restart it and check the cables."),
        ("li", "Red: there is no signal from the fibre line. Check the ONT and report a fault if it stays red."),
        ("li", "Blue flashing: WPS pairing is in progress."),
        ("h2", "Automatic firmware updates"),
        (
            "p",
            "The Kestrel Hub 3 updates its firmware automatically between 3am and 4am when there is an update. "
            "Your connection may drop for up to 5 minutes while it restarts.",
        ),
    ],
    [
        ("h1", "Restarting and resetting the router"),
        ("p", "To restart the router, switch it off at the wall, wait 30 seconds and switch it on again."),
        ("h2", "Factory reset"),
        (
            "p",
            "A factory reset returns every setting, including your Wi-Fi name and password, to the values on the "
            "sticker. With the router switched on, push a paper clip into the small reset hole on the back and hold "
            "it for 15 seconds until the light flashes white. The router then restarts, which takes about 10 minutes.",
        ),
        ("h2", "Improving Wi-Fi coverage"),
        (
            "p",
            "Place the router in a central, open spot at least 1 metre off the floor and away from microwaves, fish "
            "tanks and large mirrors. For large homes, add a Kestrel Wing mesh extender: Giga 1000 customers get one "
            "included, and extra extenders cost $4 per month each.",
        ),
    ],
]

WARRANTY: list[list[tuple[str, str]]] = [
    [
        ("h1", "Kestrel Broadband equipment warranty"),
        (
            "p",
            "This policy explains what happens if the equipment we supply stops working. The equipment remains the "
            "property of Kestrel Broadband Ltd and must be returned when your service ends.",
        ),
        ("h2", "How long the warranty lasts"),
        (
            "li",
            "Kestrel Hub 3 router: covered for 24 months from delivery, and for as long as you stay a customer "
            "after that if you are on a Giga 1000 plan.",
        ),
        ("li", "Kestrel Wing mesh extender: covered for 12 months from delivery."),
        ("li", "Kestrel TV box: covered for 24 months from delivery."),
        ("li", "Power supplies and cables: covered for 12 months."),
        ("h2", "What the warranty covers"),
        (
            "p",
            "The warranty covers faults in materials and manufacturing that appear with normal use, such as a router "
            "that will not switch on, a broken Wi-Fi radio or a port that has stopped working.",
        ),
    ],
    [
        ("h1", "What the warranty does not cover"),
        ("li", "Accidental damage, such as drops, spills or damage by pets."),
        ("li", "Damage from lightning strikes or power surges."),
        ("li", "Equipment that has been opened, modified or had unofficial firmware installed."),
        ("li", "Lost or stolen equipment."),
        (
            "p",
            "If equipment that is not covered needs replacing, we charge a replacement fee of $60 for a Kestrel "
            "Hub 3 router and $30 for a Kestrel Wing extender.",
        ),
        ("h2", "How to make a warranty claim"),
        (
            "p",
            "Call technical support on 0800 555 0199 (option 2). An adviser runs remote tests to confirm the fault. "
            "If the equipment is faulty, we ship a replacement by courier within 2 business days together with a "
            "prepaid return label for the faulty unit. Please return the faulty unit within 14 days, or a non-return "
            "fee may apply.",
        ),
    ],
]

TERMS: list[list[tuple[str, str]]] = [
    [
        ("h1", "Kestrel Broadband terms of service: summary"),
        (
            "p",
            "This is a plain-language summary of our full terms of service. If anything here differs from the full "
            "terms, the full terms apply.",
        ),
        ("h2", "Who can sign up"),
        (
            "p",
            "The account holder must be at least 18 years old and live at the address where the service is "
            "installed. We may run a credit check when you sign up for a 12-month contract.",
        ),
        ("h2", "Price changes"),
        (
            "p",
            "After your 24-month price lock ends we may change prices. We give you at least 30 days' notice of any "
            "price increase by email, and if we raise your price while you are in contract you may leave without "
            "an early termination fee within 30 days of our notice.",
        ),
    ],
    [
        ("h1", "Acceptable use"),
        (
            "p",
            "Residential plans are for personal and household use. You must not use the service to run commercial "
            "servers, resell the connection, send spam or break the law. We may suspend the service after a written "
            "warning if these rules are broken.",
        ),
        ("h2", "Your personal data"),
        (
            "p",
            "We keep your account details for 6 years after your account closes, because tax law requires it, and "
            "call recordings for 90 days. You can ask for a copy of your personal data at any time in the My Kestrel "
            "app under Profile > Privacy.",
        ),
        ("h2", "Disputes"),
        (
            "p",
            "If we cannot resolve a complaint within 8 weeks you can refer it to the independent Communications "
            "Ombudsman. These terms are governed by the laws of the Harbour Valley region.",
        ),
    ],
]

# DOCX content: ("h1"|"h2"|"p"|"li"|"table", payload); a table payload is a list of rows.
REFUNDS: list[tuple[str, object]] = [
    ("h1", "Refunds and cancellations policy"),
    ("p", "This policy explains how to cancel your Kestrel Broadband service, what it costs, and how refunds work."),
    ("h2", "Cooling-off period"),
    (
        "p",
        "You can cancel a new contract within 14 days of your service being activated and get a full refund of "
        "everything you have paid, including any installation fee. Tell us by phone, chat or email; you must "
        "still return the equipment.",
    ),
    ("h2", "Early termination fee"),
    (
        "p",
        "If you leave a 12-month contract early, we charge an early termination fee of $15 for each remaining full "
        "month of the contract, capped at $180. Kestrel Flex customers pay no early termination fee.",
    ),
    ("h2", "When we waive the early termination fee"),
    (
        "table",
        [
            ["Reason for leaving", "Early termination fee", "What we need"],
            ["Moving to an address we do not serve", "Waived", "Proof of your new address"],
            ["Bereavement of the account holder", "Waived", "A copy of the death certificate"],
            ["Moving into a care home", "Waived", "A letter from the care home"],
            ["Military deployment abroad", "Waived", "A copy of your deployment orders"],
            [
                "Speed below the minimum guaranteed speed",
                "Waived",
                "Three days of wired speed tests after our repair attempt",
            ],
            ["Switching to another provider", "Charged", "Nothing"],
        ],
    ),
    ("h2", "How refunds are paid"),
    ("li", "Refunds go back to the payment method you used, within 5 to 7 business days of the refund being approved."),
    ("li", "If you paid by bank transfer, we refund to the bank account you paid from."),
    ("li", "Any credit left on a closed account is refunded automatically with your final bill."),
    ("h2", "Notice period"),
    (
        "p",
        "To cancel after your contract has ended, give us 30 days' notice. Your final bill covers the notice period, "
        "minus any days already paid for in advance.",
    ),
]

MOVING_HOME: list[tuple[str, object]] = [
    ("h1", "Moving home with Kestrel Broadband"),
    ("p", "Taking your broadband with you is simple. This guide explains when to tell us and what it costs."),
    ("h2", "When to tell us"),
    (
        "p",
        "Tell us about your move at least 21 days before your moving date, in the My Kestrel app under Account > "
        "Moving home or by calling option 3. This gives us time to book an engineer at your new address if one is "
        "needed, so you are online on the day you move.",
    ),
    ("h2", "What it costs"),
    ("li", "Your first home move in any 12-month period is free."),
    ("li", "Any further move within 12 months costs $49."),
    ("li", "Your contract and price lock continue unchanged; the contract does not restart."),
    ("h2", "Checking coverage at your new address"),
    (
        "p",
        "Before you move, check that we serve your new address on our website. If we do not serve it, you can "
        "leave your contract without an early termination fee; just send us proof of your new address.",
    ),
    ("h2", "Moving day checklist"),
    (
        "table",
        [
            ["Step", "What to do"],
            ["1", "Pack the Kestrel Hub 3 router, its power supply and any Kestrel Wing extenders."],
            ["2", "Leave the white ONT box on the wall at your old home: it belongs to the property."],
            ["3", "At your new home, connect the router to the ONT with the yellow cable."],
            ["4", "If the ONT light marked PON is off, call us on option 3 and we will activate the line remotely."],
        ],
    ),
]

# XLSX FAQ: one sheet of question/answer pairs, the header in the first row.
TV_FAQ: list[tuple[str, str]] = [
    (
        "What is Kestrel TV?",
        "Kestrel TV is our TV service that works over your broadband. It has more than 80 live "
        "channels and on-demand catch-up for 30 days, for $12 per month on top of any broadband plan.",
    ),
    (
        "How many screens can watch Kestrel TV at the same time?",
        "You can watch on up to 4 screens at the same time: "
        "the Kestrel TV box plus phones, tablets or computers with the Kestrel TV app.",
    ),
    (
        "How much can I record?",
        "The Kestrel TV box records up to 300 hours of programmes in HD in the cloud, and "
        "recordings are kept for 12 months.",
    ),
    (
        "Is there a sports package?",
        "Yes, the Kestrel Sports add-on costs $18 per month and adds six live sports "
        "channels. You can cancel it at any time with 30 days' notice.",
    ),
    (
        "What is the default parental PIN for Kestrel TV?",
        "The default parental PIN is 1234. Change it in Settings > "
        "Parental controls on the TV box as soon as it is set up.",
    ),
    (
        "Can I cancel Kestrel TV and keep my broadband?",
        "Yes. Kestrel TV is a rolling monthly add-on, so you can cancel "
        "it with 30 days' notice without any early termination fee and keep your broadband plan.",
    ),
    (
        "Which streaming apps are on the Kestrel TV box?",
        "The box includes Netflix, YouTube, Prime Video and Disney+ "
        "apps. You need your own subscription for each streaming service.",
    ),
    (
        "Why does Kestrel TV say no signal?",
        "Check that the TV box is connected to the router with its Ethernet cable "
        "or to Wi-Fi, and that your TV is on the right HDMI input. Restart the box by holding the power button for "
        "10 seconds.",
    ),
]


def _pdf(pages: list[list[tuple[str, str]]], title: str) -> bytes:
    from fpdf import FPDF

    class _Doc(FPDF):
        def footer(self) -> None:
            self.set_y(-14)
            self.set_font("Helvetica", "I", 8)
            self.cell(0, 6, f"Kestrel Broadband - {title} - page {self.page_no()}", align="C")

    pdf = _Doc(format="A4")
    pdf.set_title(title)
    pdf.set_author("Kestrel Broadband Ltd")
    pdf.set_creator("demo/build_demo_kb.py")
    pdf.set_creation_date(FIXED_TIME)
    pdf.set_auto_page_break(auto=True, margin=18)
    for blocks in pages:
        pdf.add_page()
        for kind, text in blocks:
            pdf.set_x(pdf.l_margin)
            if kind == "h1":
                pdf.set_font("Helvetica", "B", 18)
                pdf.multi_cell(0, 9, text)
                pdf.ln(3)
            elif kind == "h2":
                pdf.ln(2)
                pdf.set_font("Helvetica", "B", 13)
                pdf.multi_cell(0, 7, text)
                pdf.ln(1)
            elif kind == "li":
                pdf.set_font("Helvetica", "", 11)
                pdf.multi_cell(0, 6, "- " + text)
                pdf.ln(1)
            else:
                pdf.set_font("Helvetica", "", 11)
                pdf.multi_cell(0, 6, text)
                pdf.ln(2)
    return bytes(pdf.output())


def _docx(blocks: list[tuple[str, object]], title: str) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = title
    document.core_properties.author = "Kestrel Broadband Ltd"
    document.core_properties.created = FIXED_TIME.replace(tzinfo=None)
    document.core_properties.modified = FIXED_TIME.replace(tzinfo=None)
    document.core_properties.last_modified_by = "demo/build_demo_kb.py"
    document.core_properties.revision = 1
    for kind, payload in blocks:
        if kind == "h1":
            document.add_heading(str(payload), level=1)
        elif kind == "h2":
            document.add_heading(str(payload), level=2)
        elif kind == "li":
            document.add_paragraph(str(payload), style="List Bullet")
        elif kind == "table":
            rows = payload
            assert isinstance(rows, list)
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            table.style = "Table Grid"
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
        else:
            document.add_paragraph(str(payload))
    buffer = io.BytesIO()
    document.save(buffer)
    return _normalise_zip(buffer.getvalue())


def _xlsx(rows: list[tuple[str, str]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    workbook = Workbook()
    workbook.properties.creator = "Kestrel Broadband Ltd"
    workbook.properties.created = FIXED_TIME.replace(tzinfo=None)
    workbook.properties.modified = FIXED_TIME.replace(tzinfo=None)
    sheet = workbook.active
    assert sheet is not None
    sheet.title = "Kestrel TV FAQ"
    sheet.append(["Question", "Answer"])
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for question, answer in rows:
        sheet.append([question, answer])
    sheet.column_dimensions["A"].width = 55
    sheet.column_dimensions["B"].width = 110
    for row in sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _normalise_zip(buffer.getvalue())


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite a ZIP container with fixed timestamps and sorted-stable order, so builds are reproducible."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            clean = zipfile.ZipInfo(info.filename, date_time=(2026, 1, 15, 9, 0, 0))
            clean.compress_type = zipfile.ZIP_DEFLATED
            clean.external_attr = 0o644 << 16
            target.writestr(clean, source.read(info.filename))
    return out.getvalue()


def build(out: Path = OUT) -> list[Path]:
    """Write every binary demo document into ``out``; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "router-setup-guide.pdf": _pdf(ROUTER_GUIDE, "Kestrel Hub 3 router setup guide"),
        "equipment-warranty.pdf": _pdf(WARRANTY, "Equipment warranty"),
        "terms-of-service-summary.pdf": _pdf(TERMS, "Terms of service summary"),
        "refunds-and-cancellations.docx": _docx(REFUNDS, "Refunds and cancellations policy"),
        "moving-home.docx": _docx(MOVING_HOME, "Moving home with Kestrel Broadband"),
        "kestrel-tv-faq.xlsx": _xlsx(TV_FAQ),
    }
    written = []
    for name, data in files.items():
        path = out / name
        path.write_bytes(data)
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    for path in build(target):
        print(path)
