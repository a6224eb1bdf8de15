"""Speech synthesis backends: process-wide resources, one TTS processor per call.

Backends are named in ``pipelines.registry`` only; what one needs and can do is declared on its class as
:class:`TTSCapabilities`.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from pipecat.services.tts_service import TTSService

from pipelines.options import TTSOptions


@dataclass(frozen=True, slots=True)
class TTSCapabilities:
    """What a synthesis engine needs and can do (declared on its class; callers ask this, never the name).

    Attributes:
        offline: Needs no network service: it runs in this process or in processes it starts.
        programs: Executables it runs, which must be on ``PATH`` (``voxdesk doctor`` checks them).
    """

    offline: bool = False
    programs: tuple[str, ...] = ()


_CLAUSE = re.compile(r"(?<=[,;:])\s+")
# Where a long first sentence without punctuation can be cut with little harm to its prosody.
_PHRASE = re.compile(r"\s+(?=(?:and|but|or|so|because|if|when|while|within|with|for|to|after|before|until|unless)\s)")


# A menu path in help-centre text ("Profile > Security", each step capitalised): local engines drop the ">" and
# run the steps together. "Speeds > 100 Mb/s" is a comparison and stays.
_MENU_STEP = re.compile(r"(?<=\w)\s+>\s+(?=[A-Z])")


def speakable(text: str) -> str:
    """``text`` as a local synthesiser should read it: menu paths become "Profile, then Security"."""
    return _MENU_STEP.sub(", then ", text.strip())


def first_clause_split(text: str, *, min_words: int = 3, max_first_words: int = 9) -> list[str]:
    """Split ``text`` so its first clause can be synthesised (and heard) before the rest.

    The first punctuated clause boundary that leaves at least ``min_words`` words on each side is used; if the
    first piece would still be longer than ``max_first_words``, it is cut before a conjunction or preposition.
    """
    head, tail = text, ""
    for match in _CLAUSE.finditer(text):
        if len(text[: match.start()].split()) >= min_words and len(text[match.end() :].split()) >= min_words:
            head, tail = text[: match.start()], text[match.end() :]
            break
    if len(head.split()) > max_first_words:
        for match in _PHRASE.finditer(head):
            words_before = len(head[: match.start()].split())
            if min_words <= words_before <= max_first_words and len(head[match.end() :].split()) >= min_words:
                head, tail = head[: match.start()], (head[match.end() :] + " " + tail).strip()
                break
    return [head, tail] if tail else [head]


def leading_silence(pcm: bytes, *, sample_rate: int, threshold: int = 200, keep_ms: int = 20) -> int | None:
    """How many bytes of near-silence start 16-bit mono ``pcm``; None when nothing in it is louder than ``threshold``.

    Keeps ``keep_ms`` before the first sample louder than ``threshold``.
    """
    import numpy as np

    samples = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        return None
    return max(0, int(loud[0]) - sample_rate * keep_ms // 1000) * 2


def trim_leading_silence(pcm: bytes, *, sample_rate: int, threshold: int = 200, keep_ms: int = 20) -> bytes:
    """Drop near-silence at the start of 16-bit mono ``pcm`` (flite starts every utterance with ~0.2 s).

    Keeps ``keep_ms`` before the first sample louder than ``threshold``.
    """
    cut = leading_silence(pcm, sample_rate=sample_rate, threshold=threshold, keep_ms=keep_ms)
    return pcm if cut is None else pcm[cut:]


class TTSBackend(ABC):
    """A speech synthesis engine, prewarmed once per process.

    Attributes:
        name: The name it is registered under in ``pipelines.registry`` (reported, never compared).
        capabilities: What the engine needs and can do.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[TTSCapabilities] = TTSCapabilities()

    @classmethod
    @abstractmethod
    def prewarm(cls, options: TTSOptions) -> TTSBackend:
        """Check/load the engine's process-wide resources."""

    def close(self) -> None:
        """Release the engine's process-wide resources (worker processes); the default has none."""
        return

    def voices(self) -> tuple[str, ...]:
        """The voices this engine has installed, sorted (the persona editor offers these); empty: unknown."""
        return ()

    @abstractmethod
    def create_service(
        self, *, call_id: str, voice: str | None = None, speaking_rate: float | None = None
    ) -> TTSService:
        """A synthesiser for one call (``voice``/``speaking_rate`` from the persona override the defaults)."""
