"""Word (.docx): headings, paragraphs, lists and tables in document order."""

from __future__ import annotations

import io
import re

import docx
from docx.document import Document as DocxDocument
from docx.oxml.ns import qn
from docx.table import Table
from docx.text.paragraph import Paragraph

from knowledge.cleaning import normalise
from knowledge.errors import DocumentError
from knowledge.sniff import check_zip
from knowledge.types import ParsedDocument, Section

_HEADING = re.compile(r"^(heading|titre|überschrift)\s*(\d)$", re.I)


def _heading_level(paragraph: Paragraph) -> int | None:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    if name.lower() == "title":
        return 0
    match = _HEADING.match(name.strip())
    return int(match.group(2)) if match else None


def _is_list(paragraph: Paragraph) -> bool:
    name = (paragraph.style.name if paragraph.style is not None else "") or ""
    if name.lower().startswith("list"):
        return True
    ppr = paragraph._p.pPr
    return ppr is not None and ppr.find(qn("w:numPr")) is not None


def _table_lines(table: Table) -> list[str]:
    rows = [[normalise(cell.text) for cell in row.cells] for row in table.rows]
    if not rows:
        return []
    header = rows[0]
    lines: list[str] = []
    if len(rows) >= 2 and all(header):
        for row in rows[1:]:
            pairs = [f"{h}: {v}" for h, v in zip(header, row, strict=False) if v]
            if pairs:
                lines.append("; ".join(pairs) + ".")
    else:
        for row in rows:
            cells = [c for c in row if c]
            if cells:
                lines.append(" | ".join(cells))
    return lines


def parse(data: bytes) -> ParsedDocument:
    """Parse a .docx document.

    Raises:
        DocumentError: Damaged files or zip bombs.

    """
    check_zip(data, what="Word")
    try:
        document: DocxDocument = docx.Document(io.BytesIO(data))
    except (KeyError, ValueError) as exc:
        raise DocumentError(
            "The Word file is damaged or is not a real .docx document. Open it in Word, save a new copy and upload it."
        ) from exc
    title = normalise(document.core_properties.title or "") or None
    sections: list[Section] = []
    headings: list[str] = []
    buffer: list[str] = []

    def flush() -> None:
        text = "\n\n".join(buffer).strip()
        if text:
            sections.append(Section(text=text, headings=tuple(headings)))
        buffer.clear()

    body = document.element.body
    for child in body.iterchildren():
        if child.tag == qn("w:p"):
            paragraph = Paragraph(child, document)
            text = normalise(paragraph.text)
            if not text:
                continue
            level = _heading_level(paragraph)
            if level is not None:
                flush()
                depth = max(level, 1)
                del headings[depth - 1 :]
                headings.append(text)
                if title is None:
                    title = text
            elif _is_list(paragraph):
                buffer.append(f"- {text}")
            else:
                buffer.append(text)
        elif child.tag == qn("w:tbl"):
            buffer.extend(_table_lines(Table(child, document)))
    flush()
    # List items belong together: join consecutive "- " paragraphs with single newlines.
    merged = [Section(text=re.sub(r"\n\n(?=- )", "\n", s.text), headings=s.headings, page=s.page) for s in sections]
    return ParsedDocument(title=title, sections=merged, pages=None, format="docx")
