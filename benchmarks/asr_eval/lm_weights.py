"""Choosing the domain LM's interpolation with the general English model, on the team's development set.

For each ``weight:words`` setting (``general_weight``: the general model's share; ``general_words``: its most
frequent words added to the vocabulary; ``0:0`` is the knowledge base alone) the domain LM is built from the
demo knowledge base's text (as the server builds it: ``benchmarks.product_kb``) and the 60 questions of
``benchmarks/asr_eval`` are decoded per voice as calls decode them. Prints, per setting, the build time, the
decoder's load time, the vocabulary and per voice WER and real-time factor (CPU). The defaults in
``pipelines/asr/domain_lm.py`` are the setting with the lowest mean WER over the voices given.

``--heldout`` instead decodes the held-out ``demo_callers`` questions (``benchmarks/heldout``) with the shipped
defaults, for reporting beside the team's figures: never use it to choose a setting.

Run: ``.venv/bin/python -m benchmarks.asr_eval.lm_weights [--voices slt,espeak-en-us] [--grid 0:0,0.05:1000]
[--heldout --voices kal,awb,espeak-en-us+m3]``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.asr_eval.harness import read_pcm
from benchmarks.asr_eval.render import OUT, questions, render_all
from benchmarks.asr_eval.scoring import decode, domain_decoder, edit_distance
from benchmarks.product_kb import open_demo_knowledge
from pipelines.asr.acoustic_adaptation import transcript_words as words
from pipelines.asr.domain_lm import GENERAL_WEIGHT, GENERAL_WORDS, build_domain_lm

HELDOUT = Path(__file__).resolve().parents[1] / "heldout" / "demo_callers" / "questions.json"


def _utterances(voices: list[str], heldout: bool) -> dict[str, list[tuple[str, bytes]]]:
    """Per voice: (reference text, PCM) of each question."""
    if heldout:
        from benchmarks.heldout_eval import audio  # the held-out benchmark's own rendering and cache

        rows = json.loads(HELDOUT.read_text(encoding="utf-8"))
        return {v: [(r["text"], audio(v, "demo_callers", r["id"], r["text"])) for r in rows] for v in voices}
    files = render_all(tuple(voices))
    return {v: [(q["text"], read_pcm(files[v][q["id"]])) for q in questions()] for v in voices}


def evaluate(corpus: str, voices: list[str], grid: list[tuple[float, int]], heldout: bool) -> dict[str, Any]:
    """Build and decode every setting; returns the report."""
    utterances = _utterances(voices, heldout)
    report: dict[str, Any] = {
        "set": "held-out demo_callers (not for tuning)" if heldout else "team development set (asr_eval)",
        "settings": {},
    }
    for weight, extra in grid:
        t0 = time.perf_counter()
        lm = build_domain_lm(corpus, OUT / "models", general_weight=weight, general_words=extra)
        build_s = time.perf_counter() - t0
        c0 = time.process_time()
        decoder = domain_decoder(lm.lm_path, lm.dict_path)
        row: dict[str, Any] = {
            "build_s": round(build_s, 1),
            "decoder_load_cpu_ms": round((time.process_time() - c0) * 1000, 1),
            "vocabulary": lm.vocabulary_size,
            "lm_mb": round(lm.lm_path.stat().st_size / 1e6, 2),
            "voices": {},
        }
        for voice, items in utterances.items():
            errors = ref_words = 0
            cpu = audio_s = 0.0
            for text, pcm in items:
                hyp, seconds = decode(decoder, pcm)
                ref = words(text)
                errors += edit_distance(ref, words(hyp))
                ref_words += len(ref)
                cpu += seconds
                audio_s += len(pcm) / 32000
            row["voices"][voice] = {"wer": round(errors / ref_words, 3), "rtf": round(cpu / audio_s, 3)}
        row["mean_wer"] = round(sum(v["wer"] for v in row["voices"].values()) / len(voices), 3)
        report["settings"][f"{weight:g}:{extra}"] = row
    return report


async def _corpus() -> str:
    with tempfile.TemporaryDirectory(prefix="lm-weights-") as tmp:
        async with open_demo_knowledge(Path(tmp) / "data") as kb:
            return await kb.corpus()


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voices", default="slt,espeak-en-us")
    parser.add_argument("--grid", default=f"0:0,{GENERAL_WEIGHT:g}:{GENERAL_WORDS}")
    parser.add_argument("--heldout", action="store_true", help="decode the held-out demo_callers (shipped defaults)")
    parser.add_argument("--corpus", type=Path, default=None, help="the knowledge base's text (default: ingest demo)")
    args = parser.parse_args()
    grid = [(GENERAL_WEIGHT, GENERAL_WORDS)] if args.heldout else []
    if not args.heldout:
        for item in args.grid.split(","):
            weight, extra = item.split(":")
            grid.append((float(weight), int(extra)))
    corpus = args.corpus.read_text(encoding="utf-8") if args.corpus else asyncio.run(_corpus())
    print(json.dumps(evaluate(corpus, args.voices.split(","), grid, args.heldout), indent=1))


if __name__ == "__main__":
    main()
