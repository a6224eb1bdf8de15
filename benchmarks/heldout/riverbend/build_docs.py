"""Write the binary documents (PDF, DOCX, XLSX) of the held-out Riverbend Water knowledge base.

The Markdown, HTML, plain-text and CSV documents in ``docs/`` are written by hand; this script writes the rest
from the text below so that they can be reviewed as text. The output is committed beside it and is
reproducible (fixed dates, fixed timestamps inside the ZIP containers). Held-out data: nothing in the product
may be tuned on it (see ``benchmarks/heldout/README.md``).

Usage::

    .venv/bin/python benchmarks/heldout/riverbend/build_docs.py
"""

from __future__ import annotations

import datetime as dt
import io
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parent / "docs"
FIXED_TIME = dt.datetime(2026, 3, 2, 10, 0, 0, tzinfo=dt.UTC)
AUTHOR = "Riverbend Water Services Ltd"

Block = tuple[str, object]  # ("h1"|"h2"|"p"|"li", text) or ("table", rows)

PAYMENT_HELP: list[list[Block]] = [
    [
        ("h1", "Help with paying your water bill"),
        (
            "p",
            "Riverbend Water recognises that some of our customers find it difficult to pay for the water they "
            "need, whether because of a low income, a sudden change in circumstances or a medical condition that "
            "means they use more water than most households. This guide describes each of the schemes we offer. "
            "You can apply for any of them by calling the customer line or through your online account, and our "
            "advisers will check which combination of schemes gives you the greatest help.",
        ),
        ("h2", "Payment plans for arrears"),
        (
            "p",
            "If you have fallen behind with your payments, we will agree a payment plan that spreads the amount "
            "you owe over up to 24 months, alongside your ongoing charges. We do not charge interest on a payment "
            "plan, and while you keep to it no reminders are sent and the debt is not passed to a recovery agency. "
            "If you miss two payments in a row, the plan is cancelled and we will contact you to agree a new one "
            "before taking any further action.",
        ),
        ("h2", "Payment break"),
        (
            "p",
            "If you lose your job, fall seriously ill or suffer another sudden drop in income, you can ask for a "
            "payment break of up to three months, during which you pay nothing and no charges are added. At the "
            "end of the break we agree a payment plan for the charges that built up during it. A payment break can "
            "be granted once in any two year period.",
        ),
        ("h2", "Riverbend Assist: our social tariff"),
        (
            "p",
            "Households with a total income below $21,000 a year before tax, after housing costs are left out, can "
            "apply for Riverbend Assist, which reduces the bill by up to 50 per cent. The discount depends on the "
            "household income and the number of people living in the home, and it lasts for two years, after which "
            "you will be asked to apply again. We will need to see evidence of your income, such as a benefit "
            "award letter or recent payslips.",
        ),
    ],
    [
        ("h2", "WaterCap: a cap on metered bills"),
        (
            "p",
            "Metered customers who receive a means-tested benefit and who either have three or more children "
            "under 19 living at home or have a medical condition that requires a lot of water, such as a condition "
            "treated with home dialysis, can have their bill capped. Under WaterCap you never pay more than the "
            "average household bill, which is $412 for the 2026/27 year, however much water you use.",
        ),
        ("h2", "Fresh Start: arrears matching"),
        (
            "p",
            "Fresh Start is for customers who owe more than $250 and receive a means-tested benefit. For every "
            "dollar you pay towards your arrears under an agreed plan, we take another dollar off the debt, for up "
            "to 12 months. Customers who complete the year usually clear their arrears in half the time.",
        ),
        ("h2", "Free and independent debt advice"),
        (
            "p",
            "We fund Clearway Debt Advice, an independent charity, to give free and confidential advice to our "
            "customers about all their debts, not only water. Our advisers can refer you directly, and Clearway "
            "will contact you within 3 working days of the referral.",
        ),
        ("h2", "The Priority Services Register"),
        (
            "p",
            "Customers who are of pensionable age, who have a disability or a long-term illness, who have young "
            "children or who need extra help for any other reason can join our Priority Services Register free of "
            "charge. Members receive bottled water delivered to the door when the supply fails, can nominate a "
            "relative or carer to receive copies of their bills, and can set up a password scheme so that they can "
            "be sure a visitor really works for us.",
        ),
        (
            "table",
            [
                ["Scheme", "Who can apply", "What you get"],
                ["Payment plan", "Anyone with arrears", "Arrears spread over up to 24 months, no interest"],
                ["Payment break", "A sudden drop in income", "Up to 3 months with nothing to pay"],
                ["Riverbend Assist", "Household income below $21,000", "Up to 50% off the bill for two years"],
                ["WaterCap", "Metered, on benefits, large family or medical need", "Bill capped at $412 a year"],
                ["Fresh Start", "Arrears over $250, on benefits", "Every dollar paid matched for 12 months"],
            ],
        ),
    ],
]

WATER_QUALITY: list[list[Block]] = [
    [
        ("h1", "Drinking water quality report 2025"),
        (
            "p",
            "This annual report summarises the results of the tests we carried out on the drinking water we "
            "supplied during 2025, and answers the questions about water quality that our customers ask us most "
            "often. During the year we took more than 40,000 samples from our treatment works, reservoirs and "
            "customers' taps, and 99.97 per cent of the tests met the required standards.",
        ),
        ("h2", "Hardness"),
        (
            "p",
            "Most of the valley is supplied from the River Wend and the Ashford boreholes, and its water is "
            "moderately hard, at around 180 milligrams of calcium carbonate per litre. Homes in the Northbank zone "
            "are supplied from Heron Reservoir and receive soft water, at around 45 milligrams per litre. Hard water "
            "is not harmful to health, although it leaves limescale in kettles and on taps.",
        ),
        ("h2", "Fluoride"),
        (
            "p",
            "We do not add fluoride to the water. It contains fluoride only at the low level found naturally, "
            "around 0.1 milligrams per litre.",
        ),
        ("h2", "Chlorine taste and smell"),
        (
            "p",
            "We add a small, carefully controlled amount of chlorine to keep water safe on its way to your tap. "
            "Some people notice its taste, particularly after work on the network. If you do not like it, fill a "
            "jug with tap water, cover it and leave it in the fridge for a few hours before drinking it; the taste "
            "fades as the chlorine disperses.",
        ),
    ],
    [
        ("h2", "Cloudy or white water"),
        (
            "p",
            "Water that looks white or cloudy when it first comes out of the tap usually contains tiny bubbles of "
            "air, which can happen when water is under pressure or after work on the pipes. Fill a glass and watch "
            "it: if it clears from the bottom up within a few minutes, it is only air and is perfectly safe to "
            "drink.",
        ),
        ("h2", "Lead pipes"),
        (
            "p",
            "Homes built before 1970 may still have lead supply pipes. We offer every customer a free lead test: "
            "ask for one and a sampler will visit within 10 working days. If lead is found, we replace our "
            "communication pipe free of charge and contribute up to $500 towards the cost of replacing the supply "
            "pipe that belongs to you. Until the pipe is replaced, run the kitchen tap for a minute before using "
            "water for drinking first thing in the morning.",
        ),
        ("h2", "Boil water notices"),
        (
            "p",
            "On the rare occasions when water may be unsafe, we issue a boil water notice by letter, by text "
            "message to customers who have registered a mobile number, and on our website. While a notice is in "
            "force, boil all water used for drinking, cooking and brushing teeth and let it cool before use. We "
            "tell you as soon as the notice is lifted.",
        ),
        ("h2", "Pink staining in the bathroom"),
        (
            "p",
            "Pink or orange marks around plugholes, in shower trays and in toilet bowls are caused by bacteria that "
            "live in the air and grow on damp surfaces. They do not come from the water supply. Regular cleaning with "
            "a mild bleach-based cleaner removes them.",
        ),
    ],
]

MOVING_HOME: list[Block] = [
    ("h1", "Moving home: our policy and your responsibilities"),
    (
        "p",
        "This policy explains what Riverbend Water needs from you when you move into, out of, or within our area, "
        "and who is responsible for the charges during a move. Following it ensures that you pay only for the "
        "water used while you lived at the property.",
    ),
    ("h2", "Telling us you are moving"),
    (
        "p",
        "Please tell us your moving date at least 2 working days before you move, and no more than 28 days "
        "before it. You can do this in your online account or by calling the customer line. Until you tell us, "
        "you remain responsible for the charges at the property you are leaving, and we can backdate the end of "
        "your account by no more than 28 days from the date on which you contact us.",
    ),
    ("h2", "Your final meter reading"),
    (
        "p",
        "On the day you move out, take a reading of the black numbers on the meter and send it to us together "
        "with your forwarding address. If we do not receive a reading, we will estimate one, and the incoming "
        "occupier will be billed from the same reading. If you disagree with an estimated closing reading, we will "
        "arrange a special reading free of charge within 5 working days.",
    ),
    ("h2", "What happens next"),
    (
        "table",
        [
            ["If you are", "What we do"],
            [
                "Moving within the Riverbend area",
                "We move your account to the new address; your direct debit continues without a new mandate.",
            ],
            [
                "Moving out of the Riverbend area",
                "We send a final bill within 14 days, and refund any credit within 10 working days.",
            ],
            [
                "Moving into a home in our area",
                "We open an account from the day you take over the property and send a welcome pack within 7 days.",
            ],
        ],
    ),
    ("h2", "Landlords and tenants"),
    (
        "p",
        "Tenants are responsible for the water and wastewater charges for the whole of their tenancy, and should "
        "tell us the start and end dates of the tenancy. While a rented property is empty between tenancies, the "
        "landlord is responsible for the standing charges and for any water used. Landlords can register all their "
        "properties through our landlord portal and report changes of tenant there.",
    ),
    ("h2", "Empty properties"),
    (
        "p",
        "If a property you own is empty and unfurnished, and no water is being used, you can ask us to class it as "
        "void. Standing charges stop from the date we confirm that the property is empty, for as long as it stays "
        "empty and unfurnished, up to a maximum of 6 months for a property that is for sale.",
    ),
]

NEW_CONNECTIONS: list[Block] = [
    ("h1", "New water and sewer connections"),
    (
        "p",
        "This guide is for homeowners, self-builders and small developers who need a new water supply or a new "
        "connection to the public sewer for a single property. Larger developments of more than ten homes are "
        "handled by our Developer Services team under a separate agreement.",
    ),
    ("h2", "Applying for a water connection"),
    (
        "p",
        "Apply through the New connections page of our website. With the application we need a site plan at a scale "
        "of 1:500 showing where the new supply pipe will run, and the planning permission reference if the property "
        "needs one. We send a quotation within 21 days of receiving a complete application. The quotation is "
        "valid for 90 days, and once it has been paid we make the connection within 21 days, provided that your "
        "own supply pipe has been laid, inspected and passed.",
    ),
    ("h2", "Connection charges for a single home"),
    (
        "table",
        [
            ["Charge", "Amount", "Notes"],
            ["Standard domestic water connection", "$1,250", "25 mm pipe, main on the same side of the road"],
            ["Connection across the road", "$2,900", "Includes road opening and traffic management"],
            ["Water infrastructure charge", "$420", "Per new property, paid once"],
            ["Wastewater infrastructure charge", "$420", "Per new property, paid once"],
            ["Sewer connection inspection", "$260", "We inspect the connection before it is backfilled"],
        ],
    ),
    ("h2", "Water for building work"),
    (
        "p",
        "While a property is being built, you can apply for a temporary building water supply, which is a metered "
        "standpipe installed on site. The installation costs $180 and the water used is charged at the normal "
        "metered rate. The temporary supply must be removed or converted to a permanent connection within 12 "
        "months.",
    ),
    ("h2", "Connecting to the public sewer"),
    (
        "p",
        "You must have our approval before you connect a new drain to a public sewer. Apply at least 21 days before "
        "the work is due to start. The connection must be made by a contractor accredited under our sewer "
        "connection scheme, and we inspect it before the trench is filled in. Rainwater must not be connected to a "
        "foul sewer.",
    ),
    ("h2", "Swimming pools and other large uses"),
    (
        "p",
        "If you plan to fill a swimming pool or a tank that holds more than 10,000 litres, please tell us at least "
        "5 days before you start, so that we can make sure that filling it does not lower the pressure for your "
        "neighbours. All new homes must have a meter fitted at the time of connection.",
    ),
]

OTHER_CHARGES: list[list[str]] = [
    ["Service", "Charge", "When it applies"],
    ["Meter accuracy test", "$65", "Only if the meter is found to be accurate within plus or minus 5 per cent"],
    ["Returned direct debit or bounced payment", "$12", "Each time a payment is returned unpaid by your bank"],
    ["Copy of a previous bill", "Free", "Up to 6 years back, by post or in your online account"],
    ["Special meter reading at your request", "$22", "Free when you are moving home or disputing an estimate"],
    ["Disconnection of a supply before demolition", "$150", "Requested by the owner, 10 working days notice"],
    ["Relocating a meter at your request", "$340", "Meter moved from inside the home to the boundary: free"],
    ["Standpipe hire for events", "$95 a day", "Plus the water used at the metered rate"],
    ["Lead test", "Free", "Once per property every 5 years"],
]


def _normalise_zip(data: bytes) -> bytes:
    """Rewrite a ZIP container with fixed timestamps so that the output is reproducible."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(2026, 3, 2, 10, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(fixed, source.read(info.filename))
    return out.getvalue()


def pdf(pages: list[list[Block]], title: str) -> bytes:
    """A PDF with one page per inner list (tables as ruled rows)."""
    from fpdf import FPDF

    class _Doc(FPDF):
        def header(self) -> None:
            self.set_font("Times", "I", 9)
            self.cell(0, 6, "Riverbend Water - customer information", align="R")
            self.ln(8)

        def footer(self) -> None:
            self.set_y(-14)
            self.set_font("Times", "I", 8)
            self.cell(0, 6, f"{title} - page {self.page_no()}", align="C")

    doc = _Doc(format="A4")
    doc.set_title(title)
    doc.set_author(AUTHOR)
    doc.set_creator("benchmarks/heldout/riverbend/build_docs.py")
    doc.set_creation_date(FIXED_TIME)
    doc.set_auto_page_break(auto=True, margin=18)
    for blocks in pages:
        doc.add_page()
        for kind, payload in blocks:
            doc.set_x(doc.l_margin)
            if kind == "h1":
                doc.set_font("Times", "B", 20)
                doc.multi_cell(0, 9, str(payload))
                doc.ln(3)
            elif kind == "h2":
                doc.ln(2)
                doc.set_font("Times", "B", 14)
                doc.multi_cell(0, 7, str(payload))
                doc.ln(1)
            elif kind == "table":
                assert isinstance(payload, list)
                doc.set_font("Times", "", 10)
                with doc.table(col_widths=(30, 40, 50), line_height=5) as table:
                    for row in payload:
                        cells = table.row()
                        for value in row:
                            cells.cell(value)
                doc.ln(2)
            else:
                doc.set_font("Times", "", 11.5)
                doc.multi_cell(0, 6, str(payload))
                doc.ln(2)
    return bytes(doc.output())


def word(blocks: list[Block], title: str) -> bytes:
    """A DOCX with headings, paragraphs and tables."""
    import docx

    document = docx.Document()
    props = document.core_properties
    props.title = title
    props.author = AUTHOR
    props.created = FIXED_TIME.replace(tzinfo=None)
    props.modified = FIXED_TIME.replace(tzinfo=None)
    props.last_modified_by = "benchmarks/heldout/riverbend/build_docs.py"
    props.revision = 1
    for kind, payload in blocks:
        if kind in ("h1", "h2"):
            document.add_heading(str(payload), level=1 if kind == "h1" else 2)
        elif kind == "table":
            assert isinstance(payload, list)
            table = document.add_table(rows=len(payload), cols=len(payload[0]))
            table.style = "Table Grid"
            for r, row in enumerate(payload):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
        else:
            document.add_paragraph(str(payload))
    buffer = io.BytesIO()
    document.save(buffer)
    return _normalise_zip(buffer.getvalue())


def sheet(rows: list[list[str]], title: str) -> bytes:
    """An XLSX with one table (header row first)."""
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    workbook.properties.creator = AUTHOR
    workbook.properties.title = title
    workbook.properties.created = FIXED_TIME.replace(tzinfo=None)
    workbook.properties.modified = FIXED_TIME.replace(tzinfo=None)
    ws = workbook.active
    assert ws is not None
    ws.title = "Other charges 2026-27"
    for row in rows:
        ws.append(row)
    for cell in ws[1]:
        cell.font = Font(bold=True)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return _normalise_zip(buffer.getvalue())


def main() -> None:
    """Write the five binary documents into ``docs/``."""
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "help-with-paying.pdf").write_bytes(pdf(PAYMENT_HELP, "Help with paying your water bill"))
    (OUT / "water-quality-report.pdf").write_bytes(pdf(WATER_QUALITY, "Drinking water quality report 2025"))
    (OUT / "moving-home-policy.docx").write_bytes(word(MOVING_HOME, "Moving home policy"))
    (OUT / "new-connections.docx").write_bytes(word(NEW_CONNECTIONS, "New water and sewer connections"))
    (OUT / "other-charges.xlsx").write_bytes(sheet(OTHER_CHARGES, "Other charges 2026/27"))


if __name__ == "__main__":
    main()
