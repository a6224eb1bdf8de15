"""What a pocketsphinx stream hands back to the STT service, wherever it decodes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

from pipelines.asr.pocketsphinx_worker import Kind

__all__ = ["DecoderResult", "DecoderStream", "ResultCallback", "to_result"]

# kind ("interim", "final" or "error"), text (the error's reason for "error"), decode_ms, audio_ms, finalize_ms,
# the other N-best hypotheses and the best one's mean word posterior (finals only)
DecoderResult = tuple[str, str, float, float, float | None, tuple[str, ...], float | None]
ResultCallback = Callable[[DecoderResult], None]


def to_result(kind: int, result: dict[str, Any], bytes_per_ms: float, end_stamp: float) -> DecoderResult:
    """A decoder's result as the STT service reads it (``finalize_ms`` measured from ``end_stamp``)."""
    text, decode_ms = str(result.get("text", "")), float(result.get("decode_ms", 0.0))
    audio_ms = float(result.get("audio_bytes", 0)) / bytes_per_ms
    if kind == Kind.FINAL:
        alternatives = tuple(str(a) for a in result.get("alternatives") or ())
        confidence = result.get("confidence")
        finalize_ms = (time.perf_counter() - end_stamp) * 1000
        return (
            "final",
            text,
            decode_ms,
            audio_ms,
            finalize_ms,
            alternatives,
            float(confidence) if confidence is not None else None,
        )
    return ("interim", text, decode_ms, audio_ms, None, (), None)


class DecoderStream(Protocol):
    """One call's streaming decoder, wherever it decodes."""

    def start_utterance(self, preroll: bytes) -> None:
        """Start an utterance with the audio kept from before the VAD's start."""
        ...

    def feed(self, audio: bytes) -> None:
        """Decode one more piece of the utterance."""
        ...

    def end_utterance(self) -> None:
        """End the utterance; its final result follows."""
        ...

    def abort_utterance(self) -> None:
        """Drop the utterance without a final result."""
        ...

    def close(self) -> None:
        """Stop decoding for this call."""
        ...
