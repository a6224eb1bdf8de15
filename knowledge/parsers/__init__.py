"""Parsers, one module per format. ``parse(data)`` sniffs the format from the bytes and dispatches.

Every parser returns a :class:`knowledge.types.ParsedDocument` or raises a
:class:`knowledge.errors.DocumentError` whose message tells a person what to fix. A parser reports the title as
the file gives it; :func:`parse` hands it on as a person reads it (:func:`knowledge.titles.display_title`), so
no parser fixes case itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from knowledge.cleaning import meaningful_chars
from knowledge.errors import DocumentError, UnsupportedFormatError
from knowledge.parsers import docx as docx_parser
from knowledge.parsers import faq, html, markdown, pdf, text
from knowledge.sniff import Format, sniff
from knowledge.titles import display_title
from knowledge.types import ParsedDocument, Section

_PARSERS: dict[str, Callable[[bytes], ParsedDocument]] = {
    "pdf": pdf.parse,
    "docx": docx_parser.parse,
    "xlsx": faq.parse_xlsx,
    "csv": faq.parse_csv,
    "html": html.parse,
    "markdown": markdown.parse,
    "text": text.parse,
}

MIN_MEANINGFUL_CHARS = 20


def parse(data: bytes, *, name_hint: str | None = None) -> ParsedDocument:
    """Parse a document of any supported format.

    Args:
        data: The file's bytes.
        name_hint: The file name, used only to break ties between text formats.

    Raises:
        DocumentError: The document is empty, damaged, encrypted, image-only or of an unsupported type.

    """
    fmt: Format = sniff(data, name_hint=name_hint)
    parser = _PARSERS.get(fmt)
    if parser is None:
        raise UnsupportedFormatError(
            "A sitemap is a list of pages, not a document: import it with import-url instead of uploading it."
        )
    try:
        document = parser(data)
    except DocumentError:
        raise
    except (MemoryError, RecursionError) as exc:
        raise DocumentError(
            f"The {fmt.upper()} file is too complex to read safely. Save a simpler copy and upload that."
        ) from exc
    except Exception as exc:
        raise DocumentError(
            f"The {fmt.upper()} file could not be read ({type(exc).__name__}); it may be damaged. "
            "Open it in its editor, save a new copy and upload that."
        ) from exc
    if not document.sections and document.title and meaningful_chars(document.title) >= MIN_MEANINGFUL_CHARS:
        # A one-line file ("We open at nine and close at five", no full stop) is read as a title only:
        # that line is the document's content.
        document = dataclasses.replace(document, sections=[Section(text=document.title)])
    if meaningful_chars(" ".join(s.text for s in document.sections)) < MIN_MEANINGFUL_CHARS:
        raise DocumentError(
            f"The {fmt.upper()} file contains no readable text. Check that it is the right file and not empty."
        )
    # The sections keep the headings as written (they are indexed text); only the title is made readable. A
    # file that gives no title keeps None: the file name stands in where the title is shown.
    return dataclasses.replace(document, title=display_title(document.title))


__all__ = ["parse", "sniff"]
