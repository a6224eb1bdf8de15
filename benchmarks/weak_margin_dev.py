"""Which finals should Whisper re-decode? The narrow-find margin, on the development sets only (issue 16).

Each development question (``benchmarks/kb``: the team's 112 + 20 unanswerable, plain-words 55 + 12; the held-out
sets are never read here) is spoken by each voice, decoded by pocketsphinx with the base's domain LM (its text and
mean word confidence) and by Whisper tiny.en with the base's prompt, as the live recogniser does; each transcript
is searched by the server's retriever. Then, for each margin, the rule ``weak_evidence`` (nothing found, a find
clearing the threshold by less than the margin, or the confidence under ``LOW_CONFIDENCE``) picks which text the
turn would search: Whisper's when weak. Reported per voice and set: the share of finals sent to Whisper, right
passage first on the answerable questions (found, top passage from the keyed document holding the key) and honest
"not found" on the unanswerable ones. A simulation of the turn's search only (no confirming question, no N-best
alternatives, no deadline); ``benchmarks.heldout_eval`` measures the live path. Run::

    .venv/bin/python -m benchmarks.weak_margin_dev --voices rms,espeak-en-us
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.asr_eval.harness import read_pcm
from benchmarks.asr_eval.render import render
from benchmarks.asr_eval.scoring import decode, domain_decoder
from benchmarks.heldout_eval import Question
from benchmarks.notfound_dev import dev_sets
from benchmarks.product_kb import DemoKnowledge, cites, demo_data_dir, open_knowledge
from control_api.logging_setup import configure_logging
from knowledge.retrieval import is_narrow
from pipelines.asr.domain_lm import build_domain_lm
from pipelines.asr.kb_hints import kb_prompt
from pipelines.asr.pocketsphinx_worker import evidence
from pipelines.asr.whisper_pool import default_model_path
from pipelines.asr.whisper_worker import decode as whisper_decode
from pipelines.asr.whisper_worker import load_model
from pipelines.brain.extractive import weak_evidence

MARGINS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.13, 0.20)
SETS = ("team_kb", "plain_words_dev")


@dataclass(frozen=True, slots=True)
class Heard:
    """One transcript's search: found, its best score, and whether the turn would be right."""

    found: bool
    score: float
    right: bool


@dataclass(frozen=True, slots=True)
class Final:
    """One spoken question: pocketsphinx's transcript and confidence, and both transcripts' searches."""

    answerable: bool
    confidence: float | None
    fast: Heard
    whisper: Heard


async def _search(kb: DemoKnowledge, q: Question, text: str) -> Heard:
    retrieval = await kb.retriever.retrieve(text or ".", top_k=1, log=False)
    top = retrieval.passages[0] if retrieval.passages else None
    hit = top is not None and any(
        cites(top.citation, k["document"]) and k["expect"].lower() in top.body.lower() for k in q.keys
    )
    right = (retrieval.found and hit) if q.answerable else not retrieval.found
    return Heard(retrieval.found, top.score if top is not None else 0.0, right)


def figures(finals: Sequence[Final], threshold: float, margin: float) -> dict[str, float]:
    """To Whisper, right passage first, honest "not found", with finds narrower than ``margin`` weak."""

    def weak(f: Final) -> bool:
        narrow = is_narrow(f.fast.found, f.fast.score, threshold, margin)
        return weak_evidence(found=f.fast.found, confidence=f.confidence, narrow=narrow)

    answerable = [f for f in finals if f.answerable]
    unanswerable = [f for f in finals if not f.answerable]
    used = [(f, f.whisper if weak(f) else f.fast) for f in finals]
    return {
        "to_whisper": round(sum(weak(f) for f in finals) / max(1, len(finals)), 3),
        "right_passage_first": round(sum(h.right for f, h in used if f.answerable) / max(1, len(answerable)), 3),
        "honest_not_found": round(sum(h.right for f, h in used if not f.answerable) / max(1, len(unanswerable)), 3),
    }


async def run(voices: Sequence[str]) -> dict[str, Any]:
    """Decode every development question in every voice, then apply each margin."""
    out: dict[str, Any] = {"benchmark": "weak_margin_dev", "sets": list(SETS), "voices": list(voices), "cells": {}}
    with tempfile.TemporaryDirectory(prefix="weak-margin-") as tmp:
        settings = await demo_data_dir(Path(tmp) / "data")
        async with open_knowledge(settings) as kb:
            corpus = await kb.corpus()
            lm = build_domain_lm(corpus, Path(tmp) / "models")
            decoder = domain_decoder(lm.lm_path, lm.dict_path)
            whisper = load_model(str(default_model_path()))
            prompt = kb_prompt(corpus) or ""
            threshold = kb.service.kb.retriever.config.score_threshold
            out["threshold"] = threshold
            questions = dev_sets()
            for voice in voices:
                for name in SETS:
                    finals: list[Final] = []
                    for q in questions[name]:
                        pcm = read_pcm(render(voice, q.text, Path(tmp) / "audio" / f"{voice}-{q.id}.wav"))
                        fast, _ = decode(decoder, pcm)
                        _, confidence = evidence(decoder, fast) if fast else ((), None)
                        heard = whisper_decode(whisper, pcm, prompt)
                        finals.append(
                            Final(q.answerable, confidence, await _search(kb, q, fast), await _search(kb, q, heard))
                        )
                    out["cells"][f"{voice}/{name}"] = {
                        f"{margin:.2f}": figures(finals, threshold, margin) for margin in MARGINS
                    }
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", default="rms,espeak-en-us", help="development voices only (flite, espeak-<v>)")
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")
    print(json.dumps(asyncio.run(run(args.voices.split(","))), indent=1))


if __name__ == "__main__":
    main()
