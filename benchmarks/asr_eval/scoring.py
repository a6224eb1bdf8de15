"""Scoring spoken evaluations: decode as a call does, count word errors, check an answer against its key.

Shared by ``benchmarks/asr_eval.py`` and ``benchmarks/heldout_eval.py`` (one implementation of each rule)."""

from __future__ import annotations

import time
from typing import Any

import pocketsphinx

from benchmarks.product_kb import cites

__all__ = ["correct", "decode", "domain_decoder", "edit_distance", "share"]


def domain_decoder(lm_path: object, dict_path: object) -> pocketsphinx.Decoder:
    """A 16 kHz pocketsphinx decoder on a domain LM, with the live pool's passes (best path on, flat pass off)."""
    return pocketsphinx.Decoder(
        samprate=16000, loglevel="FATAL", fwdflat=False, bestpath=True, lm=str(lm_path), dict=str(dict_path)
    )


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


def correct(q: dict[str, str], citation: str | None, answer: str) -> dict[str, bool]:
    """Right document, right section (its last heading), and the expected fact in the spoken answer."""
    right_doc = cites(citation, q["document"])
    right_section = cites(citation, q["document"], q["heading"])
    return {
        "right_document": right_doc,
        "right_section": right_section,
        "right_answer": right_doc and q["expect"].lower() in answer.lower(),
    }


def share(rows: list[dict[str, Any]], key: str) -> float:
    """Share of rows where ``key`` is true."""
    return round(sum(bool(r[key]) for r in rows) / max(1, len(rows)), 3)
