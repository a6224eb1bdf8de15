"""Markdown: sections under their heading path; lists, tables and code kept readable."""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.token import Token

from knowledge.cleaning import normalise
from knowledge.sniff import decode_text
from knowledge.types import ParsedDocument, Section


def _inline_text(token: Token) -> str:
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(child.content)
    return normalise("".join(parts))


def _table_lines(rows: list[list[str]]) -> list[str]:
    if len(rows) >= 2 and all(rows[0]):
        header = rows[0]
        return [
            "; ".join(f"{h}: {v}" for h, v in zip(header, row, strict=False) if v) + "." for row in rows[1:] if any(row)
        ]
    return [" | ".join(c for c in row if c) for row in rows if any(row)]


def parse_markdown_text(text: str, *, fmt: str = "markdown") -> ParsedDocument:
    """Parse Markdown source that is already decoded (HTML extraction reuses this)."""
    md = MarkdownIt("commonmark").enable("table")
    tokens = md.parse(text)
    sections: list[Section] = []
    headings: list[str] = []
    buffer: list[str] = []
    title: str | None = None
    list_depth = 0
    table: list[list[str]] | None = None
    row: list[str] | None = None

    def flush() -> None:
        body = "\n".join(buffer).strip()
        if body:
            sections.append(Section(text=body, headings=tuple(headings)))
        buffer.clear()

    i = 0
    while i < len(tokens):
        tok = tokens[i]
        if tok.type == "heading_open":
            flush()
            level = int(tok.tag[1])
            heading = _inline_text(tokens[i + 1])
            del headings[level - 1 :]
            headings.extend([""] * (level - 1 - len(headings)))
            headings.append(heading)
            headings[:] = [h for h in headings if h]
            if title is None:
                title = heading
            i += 3
            continue
        if tok.type in ("bullet_list_open", "ordered_list_open"):
            list_depth += 1
        elif tok.type in ("bullet_list_close", "ordered_list_close"):
            list_depth -= 1
        elif tok.type == "table_open":
            table = []
        elif tok.type == "tr_open":
            row = []
        elif tok.type == "tr_close" and table is not None and row is not None:
            table.append(row)
            row = None
        elif tok.type == "table_close" and table is not None:
            buffer.extend(_table_lines(table))
            table = None
        elif tok.type == "inline":
            content = _inline_text(tok)
            if row is not None:
                row.append(content)
            elif content:
                if list_depth:
                    buffer.append("  " * (list_depth - 1) + "- " + content)
                else:
                    if (buffer and not buffer[-1].startswith("- ")) or buffer:
                        buffer.append("")
                    buffer.append(content)
        elif tok.type in ("fence", "code_block"):
            code = tok.content.strip()
            if code:
                buffer.extend(["", code])
        i += 1
    flush()
    return ParsedDocument(title=title, sections=sections, pages=None, format=fmt)


def parse(data: bytes) -> ParsedDocument:
    """Parse a Markdown document."""
    return parse_markdown_text(decode_text(data))
