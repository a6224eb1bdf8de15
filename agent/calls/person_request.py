"""Whether a caller's turn asks to reach a person: the handoff policy's phrase trigger.

A person-word ("someone", "agent", "manager": the policy's ``phrases``) asks for a person only where the turn asks
to reach one. It does so when

- the turn is little more than the phrase ("agent please", "a real person");
- a verb of reaching comes before it: "talk to a human", "speak with someone", "put me through to an agent",
  "transfer me to a representative", "get me a manager", "can I have a real person";
- the caller states they want or need one: "I want someone", "I'd like a manager" (a statement: "do I need
  someone at home?" asks about the visit);
- it is followed by "I can talk to" or "available": "is there a human I can speak to", "is a person available";
- it ends a short turn that opens as a request does ("can I", "I", "let me", "please"): "can I talk to a person"
  as a recogniser may write it ("can i died to a person"), where a third party usually has more said about them
  ("can someone else pay") and a statement opens otherwise ("my son is the agent").

Elsewhere it names a third party ("can someone else pay my bill", "someone called saying they were you", "my
manager said I could claim it"), and the turn is a question for the knowledge base. An operator's phrase that is a
request by itself ("speak to someone", "get me a supervisor") matches wherever its words appear.
Chosen on ``benchmarks/handoff_triggers/dev.json`` and the team's question files (``benchmarks/handoff_triggers.py``).
"""

from __future__ import annotations

import re
from functools import lru_cache

__all__ = ["asks_for_person"]

# Words that may stand between a verb of reaching and the person-word ("to a real", "me through to an").
_GAP = r"(?:(?:a|an|the|some|another|real|live|actual|proper|human|one|of|your|please|just|to)\s+){0,3}"
_FILLER = r"(?:a|an|the|real|live|actual|human|please|just|now|thanks|thank|you|uh|um|er|hi|hello|yes|yeah|ok|okay|so)"
_LEAD = r"(?:(?:yes|yeah|no|ok|okay|hi|hello|um|uh|so|well|just|and|but|look|please)\s+)*"
SHORT_TURN_WORDS = 7  # a turn of at most this many words (fillers after the person-word not counted)
_REACH_WORDS = re.compile(r"\b(?:talk|speak|chat|connect|transfer|put|pass|get|give|reach|escalate)\b")


def _words(text: str) -> str:
    return " ".join(re.findall(r"[a-z']+", text.lower().replace("’", "'")))


@lru_cache(maxsize=32)
def _patterns(phrases: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str] | None]:
    """The request patterns around the policy's plain person-words, and the phrases that are requests already."""
    plain = [_words(p) for p in phrases if _words(p) and not _REACH_WORDS.search(_words(p))]
    requests = [_words(p) for p in phrases if _words(p) and _REACH_WORDS.search(_words(p))]
    person = r"(?:" + "|".join(re.escape(p) for p in sorted(plain, key=len, reverse=True)) + r")" if plain else r"(?!)"
    p = rf"{_GAP}{person}\b"
    around = "|".join(
        [
            rf"^(?:{_FILLER}\s+)*{person}(?:\s+{_FILLER})*$",  # "agent please"
            rf"\b(?:talk|talking|speak|speaking|chat|chatting)\s+(?:to|with)\s+{p}",  # "talk to a human"
            # "put me through to an agent", "transfer me to a representative", "connect me with an operator"
            rf"\b(?:put|pass|transfer|connect|send|hand|forward|switch|escalate)\s+(?:me|us|my call|this call|the call|"
            rf"this)?\s*(?:through\s+|over\s+|on\s+|back\s+)?(?:to|with|onto)\s+{p}",
            rf"\b(?:get|give|find|bring)\s+(?:me|us)\s+{p}",  # "get me a manager"
            rf"\b(?:can|could|may)\s+(?:i|we)\s+(?:please\s+)?(?:have|get)\s+{p}",  # "can I have a real person"
            rf"^{_LEAD}(?:i|we)\s+(?:really\s+|just\s+)?(?:want|need|would like|'d like|d like|wanna)\s+{p}",
            # "someone I can talk to"
            rf"{person}\s+(?:who\s+|that\s+)?(?:i|we)\s+(?:can|could)\s+(?:talk|speak|chat)\b",
            rf"\b(?:is|are)\s+(?:there\s+)?{p}\s+(?:available|free|around)\b",  # "is a person available"
            # A short request ending in the person-word: "can i died to a person" (misheard).
            rf"^{_LEAD}(?=(?:can|could|may|i|we|let|please|just)\s)(?:[a-z']+\s+){{1,{SHORT_TURN_WORDS - 1}}}"
            rf"(?<!another )(?<!other )(?<!second )(?<!each )(?<!every )(?<!per ){person}(?:\s+{_FILLER})*$",
        ]
    )
    request = re.compile(r"\b(?:" + "|".join(re.escape(r) for r in requests) + r")\b") if requests else None
    return re.compile(around), request


def asks_for_person(text: str, phrases: list[str]) -> bool:
    """Whether ``text`` asks to reach a person named by one of ``phrases`` (case and punctuation ignored)."""
    words = _words(text)
    if not words:
        return False
    around, request = _patterns(tuple(phrases))
    return bool(around.search(words)) or (request is not None and request.search(words) is not None)
