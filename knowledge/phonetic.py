"""Sound-alike matching of a knowledge base's own vocabulary (what a recogniser turns into near-rhymes).

A recogniser that does not know a product name writes what it heard: "Kestrel" comes out as "caster all",
"ethernet" as "either net", "voicemail" as "voice male". Spelled differently, they sound the same, and their
Metaphone keys (``jellyfish.metaphone``, Lawrence Philips' algorithm) are equal: KSTRL, E0RNT, FSML.
:class:`SoundAlike` indexes the base's words by key and rewrites a question's spans of one to three words
that are not words of the base into the base's word with the same key. The retriever tries the rewritten
question when the question as heard found nothing (``knowledge.retrieval``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import jellyfish

from knowledge.text_tokens import QUESTION_STOP_WORDS as _STOP

__all__ = ["SoundAlike"]

_WORD = re.compile(r"[a-z][a-z']*")
MIN_WORD = 4  # shorter words of the base are not offered as replacements (their keys collide too often)
MIN_KEY = 3  # a span's key must have this many sounds to be matched
# A single word needs one sound more: "guard" and "card" share KRT, "flecks" and "flex" share FLKS.
MIN_KEY_SINGLE = 4


class SoundAlike:
    """The base's vocabulary by sound.

    Args:
        texts: The base's passages.

    """

    def __init__(self, texts: Iterable[str]) -> None:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(_WORD.findall(text.lower()))
        self.vocabulary = frozenset(counts)
        by_key: dict[str, tuple[int, str]] = {}
        for word, n in counts.items():
            if len(word) < MIN_WORD or word in _STOP:
                continue
            key = jellyfish.metaphone(word)
            if len(key) >= MIN_KEY and (key not in by_key or n > by_key[key][0]):
                by_key[key] = (n, word)
        self._by_key = {key: word for key, (_, word) in by_key.items()}

    def __len__(self) -> int:
        return len(self._by_key)

    def match(self, heard: str) -> str | None:
        """The base's word that sounds like ``heard`` (one or more words run together), if any."""
        words = _WORD.findall(heard.lower())
        joined = "".join(words)
        if not joined:
            return None
        key = jellyfish.metaphone(joined)
        word = self._by_key.get(key) if len(key) >= (MIN_KEY if len(words) > 1 else MIN_KEY_SINGLE) else None
        return word if word != joined else None

    def rewrite(self, question: str) -> str | None:
        """``question`` with its sound-alikes of the base's words replaced; None when nothing changed.

        Words of the base are kept; a span of two or three words is matched only when none of them is a content
        word of the base and it does not start with a function word, a single word only when it is neither a base
        word nor a function word. Longer spans are tried first.
        """
        words = _WORD.findall(question.lower())
        out: list[str] = []
        changed = False
        i = 0
        while i < len(words):
            for span in (3, 2, 1):
                piece = words[i : i + span]
                if len(piece) < span:
                    continue
                if span == 1 and (piece[0] in self.vocabulary or piece[0] in _STOP or len(piece[0]) < MIN_WORD):
                    continue
                if span > 1 and any(w in self.vocabulary and w not in _STOP for w in piece):
                    continue
                if span > 1 and piece[0] in _STOP:
                    continue  # "my voice" is not a run-together word; "caster all" may be
                word = self.match(" ".join(piece))
                if word is not None:
                    out.append(word)
                    i += span
                    changed = True
                    break
            else:
                out.append(words[i])
                i += 1
        return " ".join(out) if changed else None
