"""Scoring the recogniser: decode as a call does, and count word errors."""

from __future__ import annotations

import time

import pocketsphinx

__all__ = ["decode", "edit_distance"]


def decode(decoder: pocketsphinx.Decoder, pcm: bytes) -> tuple[str, float]:
    """Decode like a call does: 20 ms frames into one utterance; returns text and CPU seconds."""
    t0 = time.process_time()
    decoder.start_utt()
    for i in range(0, len(pcm), 640):
        decoder.process_raw(pcm[i : i + 640], False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    return (hyp.hypstr if hyp is not None else ""), time.process_time() - t0


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]
