"""Structure-aware, token-bounded chunking with overlap; the heading path is carried into every chunk.

A section (the text under one heading, on one page) is split at paragraph, then sentence, then word
boundaries into chunks of at most ``max_tokens`` tokens, the heading line included. Consecutive chunks of
the same section share about ``overlap_tokens`` tokens of text. Small sections under the same heading
path and page are packed together; atomic sections (one FAQ pair) are never packed with others.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from knowledge.types import Chunk, Section

TokenCounter = Callable[[str], int]
_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(\[-])")


def approx_tokens(text: str) -> int:
    """Count word and punctuation tokens: close to a WordPiece count for English help-centre text."""
    return len(_TOKEN.findall(text))


def heading_line(headings: Sequence[str]) -> str | None:
    """The heading path as one line (``"Billing FAQ > Late payment"``), or None."""
    parts = [h for h in headings if h]
    return " > ".join(parts) if parts else None


def _units(text: str, limit: int, count: TokenCounter) -> list[str]:
    """Split text into pieces of at most ``limit`` tokens, at the largest boundary that fits."""
    pieces: list[str] = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = paragraph.strip()
        if not paragraph:
            continue
        if count(paragraph) <= limit:
            pieces.append(paragraph)
            continue
        for line in paragraph.split("\n"):
            if count(line) <= limit:
                pieces.append(line)
                continue
            for sentence in _SENTENCE.split(line):
                if count(sentence) <= limit:
                    pieces.append(sentence)
                    continue
                words = sentence.split()
                current: list[str] = []
                for word in words:
                    if current and count(" ".join([*current, word])) > limit:
                        pieces.append(" ".join(current))
                        current = []
                    current.append(word)
                if current:
                    pieces.append(" ".join(current))
    return pieces


def _tail(pieces: list[str], overlap: int, count: TokenCounter) -> list[str]:
    """The last pieces (sentences) of a chunk that fit in ``overlap`` tokens, to start the next chunk."""
    tail: list[str] = []
    total = 0
    for piece in reversed(pieces):
        for sentence in reversed(_SENTENCE.split(piece)):
            n = count(sentence)
            if total + n > overlap:
                return tail
            tail.insert(0, sentence)
            total += n
    return tail


def chunk_sections(
    sections: Sequence[Section],
    *,
    max_tokens: int = 180,
    overlap_tokens: int = 30,
    count_tokens: TokenCounter = approx_tokens,
) -> list[Chunk]:
    """Split parsed sections into chunks.

    Args:
        sections: The document's sections in reading order.
        max_tokens: Upper bound on a chunk's tokens, its heading line included.
        overlap_tokens: Tokens of text repeated at the start of the next chunk of the same section.
        count_tokens: The token counter (the embedder's tokenizer, or the approximate default).

    """
    if overlap_tokens >= max_tokens // 2:
        overlap_tokens = max_tokens // 4
    # Pack small neighbouring sections that share heading path and page.
    groups: list[tuple[tuple[str, ...], int | None, list[str], bool]] = []
    for section in sections:
        text = section.text.strip()
        if not text:
            continue
        last = groups[-1] if groups else None
        if (
            last is not None
            and not section.atomic
            and not last[3]
            and last[0] == section.headings
            and last[1] == section.page
        ):
            last[2].append(text)
        else:
            groups.append((section.headings, section.page, [text], section.atomic))

    chunks: list[Chunk] = []
    for headings, page, texts, _atomic in groups:
        heading = heading_line(headings)
        head_tokens = count_tokens(heading) + 1 if heading else 0
        budget = max(16, max_tokens - head_tokens)
        pieces = _units("\n\n".join(texts), budget, count_tokens)
        current: list[str] = []
        current_tokens = 0

        def emit(parts: list[str], *, heading: str | None = heading, page: int | None = page) -> None:
            body = "\n".join(parts).strip()
            if not body:
                return
            text = f"{heading}\n{body}" if heading else body
            chunks.append(Chunk(seq=len(chunks), text=text, heading=heading, page=page, token_count=count_tokens(text)))

        for piece in pieces:
            n = count_tokens(piece)
            if current and current_tokens + n > budget:
                emit(current)
                current = _tail(current, overlap_tokens, count_tokens) if overlap_tokens else []
                current_tokens = sum(count_tokens(p) for p in current)
                if current_tokens + n > budget:
                    current, current_tokens = [], 0
            current.append(piece)
            current_tokens += n
        emit(current)
    return chunks
