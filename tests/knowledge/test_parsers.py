"""Parsers, type sniffing, cleaning and chunking on the demo knowledge base and on made-up documents."""

from __future__ import annotations

import io
import itertools
import zipfile

import docx
import pytest
from openpyxl import Workbook

from knowledge.chunking import approx_tokens, chunk_sections
from knowledge.errors import DocumentError, DocumentTooLargeError, UnsupportedFormatError
from knowledge.parsers import parse
from knowledge.sniff import sniff
from knowledge.types import Section
from tests.knowledge.conftest import DEMO

pytestmark = pytest.mark.unit


def text_of(document: object) -> str:
    return "\n".join(s.text for s in document.sections)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("router-setup-guide.pdf", "pdf"),
        ("refunds-and-cancellations.docx", "docx"),
        ("kestrel-tv-faq.xlsx", "xlsx"),
        ("service-outages.html", "html"),
        ("billing-faq.md", "markdown"),
        ("installation-appointments.txt", "text"),
        ("general-faq.csv", "csv"),
    ],
)
def test_every_demo_format_parses(name: str, fmt: str) -> None:
    document = parse((DEMO / name).read_bytes(), name_hint=name)
    assert document.format == fmt
    assert document.sections
    assert len(text_of(document)) > 300


def test_the_type_comes_from_the_content_not_the_name() -> None:
    pdf = (DEMO / "equipment-warranty.pdf").read_bytes()
    assert sniff(pdf, name_hint="notes.txt") == "pdf"
    assert sniff((DEMO / "moving-home.docx").read_bytes(), name_hint="moving.pdf") == "docx"
    assert sniff((DEMO / "online-safety.html").read_bytes(), name_hint="page.md") == "html"
    assert sniff(b"# Title\n\nSome **bold** text.\n", name_hint="x.pdf") == "markdown"


def test_pdf_pages_headings_and_no_footer() -> None:
    document = parse((DEMO / "router-setup-guide.pdf").read_bytes())
    assert document.pages == 4
    reset = next(s for s in document.sections if "paper clip" in s.text)
    assert reset.page == 4
    assert reset.headings == ("Restarting and resetting the router", "Factory reset")
    assert "page 1" not in text_of(document)  # the repeated footer is furniture


def test_docx_headings_lists_and_tables() -> None:
    document = parse((DEMO / "refunds-and-cancellations.docx").read_bytes())
    assert document.title == "Refunds and cancellations policy"
    table = next(s for s in document.sections if "Military deployment abroad" in s.text)
    assert table.headings[-1] == "When we waive the early termination fee"
    assert "Reason for leaving: Military deployment abroad; Early termination fee: Waived" in table.text
    refunds = next(s for s in document.sections if s.headings[-1] == "How refunds are paid")
    assert refunds.text.count("- ") == 3


def test_html_keeps_main_content_and_drops_boilerplate() -> None:
    document = parse((DEMO / "service-outages.html").read_bytes())
    text = text_of(document)
    assert document.title == "Service outages and faults"
    assert "text STATUS to 60660" in text
    for boilerplate in ("cookies", "Sign in", "All rights reserved", "Related articles"):
        assert boilerplate not in text


def test_markdown_tables_become_readable_rows() -> None:
    document = parse((DEMO / "email-setup.md").read_bytes())
    assert "Setting: SMTP port; Value: 465 with SSL/TLS." in text_of(document)


def test_csv_and_xlsx_faqs_are_question_answer_pairs() -> None:
    csv_doc = parse((DEMO / "general-faq.csv").read_bytes(), name_hint="general-faq.csv")
    assert len(csv_doc.sections) == 16 and all(s.atomic for s in csv_doc.sections)
    assert csv_doc.sections[0].text.startswith("Q: Can I use my own router")
    xlsx_doc = parse((DEMO / "kestrel-tv-faq.xlsx").read_bytes())
    assert any("The default parental PIN is 1234" in s.text for s in xlsx_doc.sections)


def test_xlsx_without_faq_headers_reads_rows() -> None:
    workbook = Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Plan", "Speed", "Price"])
    sheet.append(["Basic", "100 Mbps", "$29"])
    buffer = io.BytesIO()
    workbook.save(buffer)
    document = parse(buffer.getvalue())
    assert document.sections[0].text == "Plan: Basic; Speed: 100 Mbps; Price: $29."


def test_text_headings_are_carried_into_chunks() -> None:
    document = parse((DEMO / "installation-appointments.txt").read_bytes())
    assert document.title == "Kestrel Broadband - Installation Appointments"  # as a person reads it
    chunks = chunk_sections(document.sections, max_tokens=180, overlap_tokens=30)
    slot = next(c for c in chunks if "morning slot" in c.text)
    # The heading path is indexed text: kept as the file writes it.
    assert slot.heading == "KESTREL BROADBAND - INSTALLATION APPOINTMENTS > Which appointment times can I choose?"
    assert slot.text.startswith(slot.heading)


@pytest.mark.parametrize("name", ["note.txt", "note.md"])
def test_a_one_line_document_is_its_content_not_only_a_title(name: str) -> None:
    # One line with no full stop reads like a title; it is still the document's text, not "no readable text".
    document = parse(b"Our office opens at nine in the morning and closes at five", name_hint=name)
    assert [s.text for s in document.sections] == ["Our office opens at nine in the morning and closes at five"]
    with pytest.raises(DocumentError, match="no readable text"):
        parse(b"# Opening hours\n", name_hint=name)  # a lone short heading is still empty


def test_chunks_are_token_bounded_with_overlap() -> None:
    sentences = [f"Sentence number {i} explains one more detail about the late payment fee." for i in range(60)]
    section = Section(text=" ".join(sentences), headings=("Billing", "Late payment"))
    chunks = chunk_sections([section], max_tokens=64, overlap_tokens=16)
    assert len(chunks) > 5
    assert all(c.token_count <= 64 for c in chunks)
    assert all(c.text.startswith("Billing > Late payment\n") for c in chunks)
    for first, second in itertools.pairwise(chunks):
        tail = first.text.splitlines()[-1]
        assert second.text.splitlines()[1] == tail  # the next chunk starts with the previous one's last sentence
    assert [c.seq for c in chunks] == list(range(len(chunks)))


def test_faq_pairs_are_never_merged() -> None:
    sections = [
        Section(text=f"Q: question {i}?\nA: answer {i}.", headings=(f"question {i}?",), atomic=True) for i in range(5)
    ]
    assert len(chunk_sections(sections, max_tokens=180, overlap_tokens=30)) == 5


def test_a_very_long_word_run_is_still_split() -> None:
    chunks = chunk_sections([Section(text="word " * 1000)], max_tokens=50, overlap_tokens=0)
    assert all(approx_tokens(c.text) <= 50 for c in chunks)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (b"   \n\t  ", "empty"),
        (b"\x00\x01\x02\x03binary\x00junk" * 10, "binary"),
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 600, "password-protected Office file"),
        (b"PK\x03\x04garbage-not-a-zip", "damaged"),
    ],
)
def test_unreadable_content_is_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(UnsupportedFormatError, match=reason):
        parse(data, name_hint="notes.md")


def test_zip_bomb_docx_is_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"<w:document>" + b" " * (300 * 1024 * 1024) + b"</w:document>")
    with pytest.raises(DocumentTooLargeError, match="zip bomb"):
        parse(buffer.getvalue(), name_hint="bomb.docx")


def test_docx_without_text_fails_cleanly() -> None:
    buffer = io.BytesIO()
    docx.Document().save(buffer)
    with pytest.raises(DocumentError, match="no readable text"):
        parse(buffer.getvalue())
