"""FAQ spreadsheets (CSV and XLSX): one atomic section per question/answer pair.

The question and answer columns are found by their header (``question``/``q``/``faq``,
``answer``/``a``/``response``); a two-column sheet without such headers is read as question, answer.
Other tables are read row by row as ``header: value`` lines.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from openpyxl import load_workbook

from knowledge.cleaning import normalise
from knowledge.errors import DocumentError
from knowledge.sniff import check_zip, decode_text
from knowledge.types import ParsedDocument, Section

_QUESTION = {"question", "questions", "q", "faq", "query", "title", "topic"}
_ANSWER = {"answer", "answers", "a", "response", "reply", "solution", "body"}
MAX_ROWS = 20000


def _cell(value: object) -> str:
    return normalise("" if value is None else str(value))


def _sections(rows: Iterable[Sequence[object]], sheet: str | None) -> list[Section]:
    table = [[_cell(v) for v in row] for row in rows]
    table = [row for row in table if any(row)]
    if not table:
        return []
    if len(table) > MAX_ROWS:
        raise DocumentError(f"The spreadsheet has more than {MAX_ROWS} rows. Split it and upload the parts.")
    header = [h.lower().strip(" :?") for h in table[0]]
    q_col = next((i for i, h in enumerate(header) if h in _QUESTION), None)
    a_col = next((i for i, h in enumerate(header) if h in _ANSWER), None)
    body = table[1:]
    if q_col is None or a_col is None:
        if len(table[0]) == 2 and not any(h in _QUESTION | _ANSWER for h in header):
            q_col, a_col, body = 0, 1, table
        else:
            lines = []
            for row in body:
                pairs = [f"{h}: {v}" for h, v in zip(table[0], row, strict=False) if v]
                if pairs:
                    lines.append(Section(text="; ".join(pairs) + ".", headings=(sheet,) if sheet else (), atomic=True))
            return lines
    sections = []
    for row in body:
        question = row[q_col] if q_col < len(row) else ""
        answer = row[a_col] if a_col < len(row) else ""
        if question and answer:
            headings = (sheet, question) if sheet else (question,)
            sections.append(Section(text=f"Q: {question}\nA: {answer}", headings=headings, atomic=True))
    return sections


def parse_csv(data: bytes) -> ParsedDocument:
    """Parse a CSV (or TSV/semicolon) FAQ or table."""
    text = decode_text(data)
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(text[:20000], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader(io.StringIO(text), dialect))
    return ParsedDocument(title=None, sections=_sections(rows, None), pages=None, format="csv")


def parse_xlsx(data: bytes) -> ParsedDocument:
    """Parse an Excel workbook: every sheet, as FAQ pairs or table rows."""
    check_zip(data, what="Excel")
    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (KeyError, ValueError, OSError) as exc:
        raise DocumentError(
            "The Excel file is damaged or is not a real .xlsx workbook. "
            "Open it in Excel, save a new copy and upload it."
        ) from exc
    sections: list[Section] = []
    try:
        many = len(workbook.sheetnames) > 1
        for sheet in workbook.worksheets:
            sections.extend(_sections(sheet.iter_rows(values_only=True), sheet.title if many else None))
    finally:
        workbook.close()
    title = normalise(workbook.properties.title or "") or None
    return ParsedDocument(title=title, sections=sections, pages=None, format="xlsx")
