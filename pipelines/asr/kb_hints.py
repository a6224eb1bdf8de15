"""What a recogniser is told about the knowledge base: its names (hotwords) and a prompt in callers' style.

Whisper continues its prompt: the prompt sets the words it expects *and* the style it writes in. A list of the
base's names ("Help line. Kestrel, Broadband, Wi-Fi, ...") made it write questions as comma-separated
capitalised words ("What, Happen, After,") and lose words; the base's own questions ("Can I use my own router
instead of the Kestrel Hub 3? How do I find my account number? ...") bias it to the base's vocabulary in the form
callers speak. :func:`kb_prompt` picks those questions greedily so that together they cover the base's most
frequent content words, and tops the prompt up with those words when the base holds few questions. Figures on the
team's development set: ``docs/recognition.md``.
"""

from __future__ import annotations

import re
from collections import Counter

from knowledge.text_tokens import QUESTION_STOP_WORDS, STOP_WORDS
from pipelines.asr.domain_lm import CALLER_PHRASES

__all__ = ["PROMPT_CHARS", "REQUESTS", "kb_prompt", "kb_terms"]

PROMPT_CHARS = 900  # ~200 tokens: under Whisper's 223-token prompt slot, so nothing is cut
_MIN_WORDS, _MAX_WORDS = 3, 14  # a caller's question, not a heading fragment or a paragraph
_VOCABULARY_WORDS = 60
_SKIP = STOP_WORDS | QUESTION_STOP_WORDS
_WORD = re.compile(r"[a-z][a-z0-9'-]+")
_LEAD = re.compile(r"^[#>*\-\s\d.)]+")  # markdown marks, list numbers
_ACTION = re.compile(r"\b(person|human|agent|someone|representative|ticket)\b")


def _requests() -> str:
    """The requests the product acts on (a person, a ticket), as pocketsphinx's domain LM holds them, as sentences."""
    asks = ("can ", "could ", "do ", "is ", "may ")
    return " ".join(
        re.sub(r"\bi\b", "I", p[0].upper() + p[1:]) + ("?" if p.startswith(asks) else ".")
        for p in CALLER_PHRASES
        if _ACTION.search(p)
    )


REQUESTS = _requests()


def kb_terms(corpus: str, limit: int = 60) -> list[str]:
    """The knowledge base's names: capitalised words inside sentences, seen at least twice, most frequent first."""
    counts: Counter[str] = Counter()
    for sentence in re.split(r"[.!?\n]+", corpus):
        tokens = re.findall(r"[A-Za-z][A-Za-z0-9-]+", sentence)
        counts.update(t for t in tokens[1:] if t[0].isupper() and not t.isupper())
    return [w for w, n in counts.most_common(limit) if n >= 2]


def _content(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.lower()) if w not in _SKIP and len(w) > 2}


def _questions(corpus: str) -> list[str]:
    """The base's own questions (FAQ entries, question headings), each once, without a heading path before it."""
    seen: set[str] = set()
    found: list[str] = []
    for piece in re.split(r"(?<=\?)\s+|\n+", corpus):
        text = _LEAD.sub("", piece.rsplit(">", 1)[-1].strip()).strip()
        if not text.endswith("?") or not _MIN_WORDS <= len(text.split()) <= _MAX_WORDS:
            continue
        key = text.lower()
        if key not in seen:
            seen.add(key)
            found.append(text)
    return found


def kb_prompt(corpus: str, limit: int = PROMPT_CHARS) -> str | None:
    """Whisper's prompt for this knowledge base (None for an empty base): questions, vocabulary, the requests.

    The requests the product acts on (``REQUESTS``) always end it: without them "Can I talk to a person?" came out
    as "Can I block to a person?", and no handover followed. Questions are taken one at a time, each the one
    adding the most occurrences of content words not yet covered, until ``limit`` characters in all; when they
    fill under half of it the base's most frequent content words follow ("Callers ask about router, bill, ..."),
    as many as fit.
    """
    frequency = Counter(w for w in _WORD.findall(corpus.lower()) if w not in _SKIP and len(w) > 2)
    if not frequency:
        return None
    limit -= len(REQUESTS) + 1  # they end the prompt, where Whisper attends most
    pool = _questions(corpus)
    covered: set[str] = set()
    chosen: list[str] = []
    used = 0

    def gain(question: str) -> int:
        return sum(frequency[w] for w in _content(question) - covered)

    while pool:
        best = max(pool, key=gain)
        if gain(best) == 0 or used + len(best) + 1 > limit:
            break
        pool.remove(best)
        chosen.append(best)
        covered |= _content(best)
        used += len(best) + 1
    if used < limit // 2:
        lead = "Callers ask about "
        words: list[str] = []
        room = limit - used - len(lead) - 1
        for word, _ in frequency.most_common(_VOCABULARY_WORDS):
            if word in covered or room - len(word) - 2 < 0:
                continue
            words.append(word)
            room -= len(word) + 2
        if words:
            chosen.append(lead + ", ".join(words) + ".")
    return " ".join([*chosen, REQUESTS])
