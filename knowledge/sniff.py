"""Find a document's format from its bytes, never from its name; refuse what is dangerous or unsupported."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Literal

from knowledge.errors import DocumentTooLargeError, UnsupportedFormatError

Format = Literal["pdf", "docx", "xlsx", "html", "markdown", "text", "csv", "sitemap"]

# What an Office file may expand to, and how much more than its compressed size (zip-bomb guard).
MAX_UNZIPPED_BYTES = 200 * 1024 * 1024
MAX_ZIP_RATIO = 200
MAX_ZIP_MEMBERS = 5000

_OLE2 = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_MD_LINE = re.compile(r"^(#{1,6}\s|\s*[-*+]\s|\s*\d+\.\s|\|.*\|\s*$|```|>\s)", re.MULTILINE)
_MD_INLINE = re.compile(r"\*\*[^*\n]+\*\*|\[[^\]\n]+\]\([^)\n]+\)|`[^`\n]+`")
_HTML_START = re.compile(rb"^\s*(<\?xml[^>]*>\s*)?(<!--.*?-->\s*)*(<!doctype\s+html|<html|<head|<body)", re.I | re.S)
_HTML_TAGS = re.compile(rb"<(p|div|h[1-6]|ul|li|table|article|main|section|span|a)\b[^>]*>", re.I)


def check_zip(data: bytes, *, what: str) -> zipfile.ZipFile:
    """Open an Office (ZIP) container after checking it cannot expand into a zip bomb.

    Raises:
        DocumentTooLargeError: The archive expands beyond the limits.
        UnsupportedFormatError: The archive is damaged.

    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise UnsupportedFormatError(
            f"The {what} file is damaged or incomplete (its ZIP container cannot be read). "
            "Open it in its editor, save a new copy and upload that."
        ) from exc
    if len(members) > MAX_ZIP_MEMBERS:
        raise DocumentTooLargeError(
            f"The {what} file contains {len(members)} parts, more than the {MAX_ZIP_MEMBERS} allowed."
        )
    total = sum(m.file_size for m in members)
    compressed = max(1, sum(m.compress_size for m in members))
    if total > MAX_UNZIPPED_BYTES or total / compressed > MAX_ZIP_RATIO:
        raise DocumentTooLargeError(
            f"The {what} file expands to {total // (1024 * 1024)} MB from {len(data) // 1024} KB "
            "(a compression ratio typical of a zip bomb), so it was not opened. "
            "Save a normal copy of the document and upload that."
        )
    return archive


def decode_text(data: bytes) -> str:
    """Decode text bytes (UTF-8 with or without BOM, UTF-16 with BOM, else Windows-1252).

    Raises:
        UnsupportedFormatError: The bytes are binary, not text.

    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    sample = data[:65536]
    if b"\x00" in sample:
        raise UnsupportedFormatError(
            "The file contains binary data, not text, and is not a supported document type "
            "(PDF, Word .docx, Excel .xlsx, HTML, Markdown, plain text or CSV)."
        )
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("cp1252", errors="replace")
    controls = sum(1 for ch in text[:65536] if ord(ch) < 32 and ch not in "\t\n\r\f")
    if controls > max(8, len(text[:65536]) // 100):
        raise UnsupportedFormatError(
            "The file contains binary data, not text, and is not a supported document type "
            "(PDF, Word .docx, Excel .xlsx, HTML, Markdown, plain text or CSV)."
        )
    return text


def _looks_like_csv(text: str) -> bool:
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if len(lines) < 2:
        return False
    try:
        dialect = csv.Sniffer().sniff("\n".join(lines[:20]), delimiters=",;\t")
    except csv.Error:
        return False
    rows = list(csv.reader(io.StringIO(text), dialect))
    rows = [r for r in rows if any(cell.strip() for cell in r)]
    if len(rows) < 2:
        return False
    width = len(rows[0])
    return width >= 2 and sum(len(r) == width for r in rows) >= 0.9 * len(rows)


def sniff(data: bytes, *, name_hint: str | None = None) -> Format:
    """Return the format of ``data``.

    The content decides. ``name_hint`` only breaks ties between text formats that read the same either way
    (a ``.md`` file with no Markdown syntax is still text; a ``.txt`` file of question,answer rows is a CSV).

    Raises:
        UnsupportedFormatError: Empty, binary, legacy, encrypted Office or unknown content.
        DocumentTooLargeError: An Office file that would expand into a zip bomb.

    """
    if not data or not data.strip():
        raise UnsupportedFormatError("The file is empty (0 bytes of content). Check the export and upload it again.")
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith(_OLE2):
        raise UnsupportedFormatError(
            "This is a password-protected Office file or an old binary .doc/.xls file. "
            "Remove the password and save it as .docx or .xlsx, then upload it again."
        )
    if data.startswith(b"PK\x03\x04"):
        archive = check_zip(data, what="Office")
        names = set(archive.namelist())
        if "word/document.xml" in names:
            return "docx"
        if "xl/workbook.xml" in names:
            return "xlsx"
        raise UnsupportedFormatError(
            "The file is a ZIP archive but not a Word (.docx) or Excel (.xlsx) document. "
            "Upload the documents inside it one by one."
        )
    if _HTML_START.search(data[:4096]):
        return "html"
    if re.search(rb"<urlset\b|<sitemapindex\b", data[:4096]):
        return "sitemap"
    text = decode_text(data)
    hint = (name_hint or "").lower()
    sample = text[:20000]
    if len(_HTML_TAGS.findall(data[:8192])) >= 3 and sample.lstrip().startswith("<"):
        return "html"
    if hint.endswith((".csv", ".tsv")) and _looks_like_csv(text):
        return "csv"
    md_signals = len(_MD_LINE.findall(sample)) + len(_MD_INLINE.findall(sample))
    if (md_signals >= 2 or (hint.endswith((".md", ".markdown")) and md_signals >= 1)) and not _looks_like_csv(text):
        return "markdown"
    if _looks_like_csv(text) and "," in text.splitlines()[0]:
        return "csv"
    return "text"
