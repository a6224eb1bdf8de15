"""PDF: text per page with page numbers, headings found by font size, repeated headers and footers removed."""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass

from pypdf import PdfReader
from pypdf.errors import FileNotDecryptedError, PdfReadError

from knowledge.cleaning import meaningful_chars, normalise, unwrap
from knowledge.errors import DocumentError
from knowledge.types import ParsedDocument, Section

MAX_PAGES = 2000


@dataclass
class _Line:
    text: str
    size: float


def _lines_of(page: object) -> list[_Line]:
    fragments: list[_Line] = []

    def visit(text: str, cm: list[float], tm: list[float], font: object, size: float) -> None:
        scale = abs(tm[0] * cm[0]) if tm and cm else 1.0
        for part in text.split("\n"):
            if part.strip():
                fragments.append(_Line(part, round(float(size) * (scale or 1.0), 1)))

    plain = page.extract_text(visitor_text=visit)  # type: ignore[attr-defined]
    # Some producers emit one fragment per glyph; their sizes are still right but the text is not.
    if fragments and sum(len(f.text) for f in fragments) / len(fragments) < 3:
        return [_Line(line, 0.0) for line in (plain or "").split("\n") if line.strip()]
    return fragments


def _furniture_key(text: str) -> str:
    return re.sub(r"\d+", "#", text.strip().lower())


def parse(data: bytes) -> ParsedDocument:
    """Parse a PDF.

    Raises:
        DocumentError: Truncated, damaged, password-protected or image-only PDFs.

    """
    if b"%%EOF" not in data[-2048:]:
        raise DocumentError(
            "The PDF file is incomplete: it ends before the PDF end-of-file marker, so it was probably cut off "
            "during download or copying. Upload a complete copy."
        )
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                unlocked = reader.decrypt("")
            except (NotImplementedError, PdfReadError) as exc:
                raise DocumentError(
                    "The PDF is encrypted with a method that cannot be opened here. "
                    "Save an unprotected copy (for example with Print to PDF) and upload that."
                ) from exc
            if not unlocked:
                raise DocumentError(
                    "The PDF is password-protected. Remove the password (for example with Print to PDF) "
                    "and upload it again."
                )
        pages = list(reader.pages)
    except FileNotDecryptedError as exc:
        raise DocumentError("The PDF is password-protected. Remove the password and upload it again.") from exc
    except PdfReadError as exc:
        raise DocumentError(
            "The PDF file is damaged and cannot be read. Open it in a PDF viewer, save a new copy and upload that."
        ) from exc
    if not pages:
        raise DocumentError("The PDF has no pages. Check that it is the right file.")
    if len(pages) > MAX_PAGES:
        raise DocumentError(f"The PDF has {len(pages)} pages; the limit is {MAX_PAGES}. Split it and upload the parts.")

    page_lines = [_lines_of(page) for page in pages]
    if meaningful_chars(" ".join(line.text for lines in page_lines for line in lines)) < 20:
        raise DocumentError(
            "The PDF has no text layer: it looks scanned or made of images. Run it through OCR (text recognition) "
            "or upload the original text document instead."
        )

    # Lines repeated on most pages (headers, footers, page numbers) are furniture, not content.
    furniture: set[str] = set()
    if len(pages) >= 2:
        counts = Counter(key for lines in page_lines for key in {_furniture_key(line.text) for line in lines})
        furniture = {key for key, n in counts.items() if n >= max(2, len(pages) * 0.6)}

    sizes: Counter[float] = Counter()
    for lines in page_lines:
        for line in lines:
            sizes[line.size] += len(line.text)
    body = sizes.most_common(1)[0][0] if sizes else 0.0
    heading_sizes = sorted({s for s in sizes if body and s >= body * 1.15}, reverse=True)[:3]

    title = (reader.metadata.title if reader.metadata and reader.metadata.title else None) or None
    sections: list[Section] = []
    headings: list[str] = []
    buffer: list[str] = []

    def flush(page: int) -> None:
        if buffer:
            text = unwrap("\n".join(buffer))
            if text:
                sections.append(Section(text=text, headings=tuple(headings), page=page))
            buffer.clear()

    for number, lines in enumerate(page_lines, start=1):
        for line in lines:
            if _furniture_key(line.text) in furniture:
                continue
            text = normalise(line.text)
            if line.size in heading_sizes and len(text) <= 150:
                flush(number)
                level = heading_sizes.index(line.size)
                del headings[level:]
                headings.append(text)
                if title is None and level == 0:
                    title = text
                continue
            buffer.append(text)
        flush(number)
    return ParsedDocument(title=title, sections=sections, pages=len(pages), format="pdf")
