"""Plain text: paragraphs, with short un-punctuated lines and questions taken as headings."""

from __future__ import annotations

from knowledge.cleaning import is_sentence_end, normalise, unwrap
from knowledge.sniff import decode_text
from knowledge.types import ParsedDocument, Section

_MAX_HEADING = 100


def _is_heading(line: str, following: str | None) -> bool:
    if not line or len(line) > _MAX_HEADING or following is None or not following.strip():
        return False
    if line.endswith("?"):
        return True
    return not is_sentence_end(line) and not line.startswith(("-", "*", "•")) and len(line.split()) <= 12


def parse(data: bytes) -> ParsedDocument:
    """Parse a plain-text document."""
    text = normalise(decode_text(data))
    lines = text.split("\n")
    title: str | None = None
    sections: list[Section] = []
    heading: str | None = None
    buffer: list[str] = []

    def flush() -> None:
        body = unwrap("\n".join(buffer))
        if body:
            headings = tuple(h for h in (title, heading) if h and h != body)
            sections.append(Section(text=body, headings=headings))
        buffer.clear()

    first = next((i for i, line in enumerate(lines) if line.strip()), None)
    if first is not None and len(lines[first]) <= _MAX_HEADING and not is_sentence_end(lines[first]):
        title = lines[first]
        lines = lines[first + 1 :]
    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else None
        previous_blank = index == 0 or not lines[index - 1].strip()
        if previous_blank and _is_heading(line, following):
            flush()
            heading = line
            continue
        buffer.append(line)
    flush()
    return ParsedDocument(title=title, sections=sections, pages=None, format="text")
