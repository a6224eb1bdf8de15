"""Spoken evaluation on the demo knowledge base: WER with and without the KB-adapted LM, and right answers.

Renders 60 caller questions with flite (slt, rms, awb, kal16) and espeak-ng into benchmarks/out/ (cached), then:

- ``wer``: pocketsphinx word error rate per voice, general model vs. the domain LM built from the knowledge
  base (``pipelines.asr.domain_lm``), decoded the way calls decode (20 ms frames, streaming, one pass);
- ``answers_offline``: per voice, the domain-LM transcript → retriever → extractive answer, checked against
  the expected section and fact;
- ``answers_pipeline``: per chosen voice, the whole audio path in-process (memory transport at real time →
  Silero VAD → streaming pocketsphinx → RAG → extractive brain → flite), several calls at once.

Prints one JSON object. Run: ``.venv/bin/python benchmarks/asr_eval.py [--pipeline-voices slt,rms] [--limit N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pocketsphinx  # noqa: E402
from loguru import logger  # noqa: E402

from benchmarks.asr_eval.demo_kb import DemoRetriever, MiniLMEmbedder, corpus_text, load_sections  # noqa: E402
from benchmarks.asr_eval.harness import ask, read_pcm  # noqa: E402
from benchmarks.asr_eval.render import OUT, VOICES, questions, render_all  # noqa: E402
from pipelines.asr.domain_lm import build_domain_lm, tokenise_sentences  # noqa: E402
from pipelines.brain.extractive import best_sentences  # noqa: E402
from pipelines.build import build_stages  # noqa: E402
from pipelines.options import ASROptions  # noqa: E402


def words(text: str) -> list[str]:
    """Normalised word tokens (numbers spelled out), as the recogniser writes them."""
    return [w.replace("-", "") for sentence in tokenise_sentences(text) for w in sentence]


def edit_distance(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def decode(decoder: pocketsphinx.Decoder, pcm: bytes) -> tuple[str, float]:
    """Decode like a call does: 20 ms frames into one utterance; returns text and CPU seconds."""
    t0 = time.process_time()
    decoder.start_utt()
    for i in range(0, len(pcm), 640):
        decoder.process_raw(pcm[i : i + 640], False, False)
    decoder.end_utt()
    hyp = decoder.hyp()
    return (hyp.hypstr if hyp is not None else ""), time.process_time() - t0


def correct(q: dict[str, str], citation: str | None, answer: str) -> dict[str, bool]:
    """Right document, right section, and the expected fact in the spoken answer."""
    right_doc = bool(citation) and citation.split("#", 1)[0] == q["document"]
    right_section = citation == f"{q['document']}#{q['heading']}"
    return {
        "right_document": right_doc,
        "right_section": right_section,
        "right_answer": right_doc and q["expect"].lower() in answer.lower(),
    }


def share(rows: list[dict[str, Any]], key: str) -> float:
    """Share of rows where ``key`` is true."""
    return round(sum(bool(r[key]) for r in rows) / max(1, len(rows)), 3)


async def main() -> None:
    """Run the evaluation and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--pipeline-voices", default="slt,rms")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    args = parser.parse_args()
    logger.remove()
    logger.add(sys.stderr, level="ERROR")

    voices = tuple(v for v in args.voices.split(",") if v)
    qs = questions()[: args.limit or None]
    files = render_all(voices)
    sections = load_sections()
    t0 = time.perf_counter()
    lm = build_domain_lm(corpus_text(sections), OUT / "models")
    lm_build_s = time.perf_counter() - t0

    # The decoder configuration the pocketsphinx backend uses for calls.
    general = pocketsphinx.Decoder(samprate=16000, loglevel="FATAL", fwdflat=False, bestpath=True)
    domain = pocketsphinx.Decoder(
        samprate=16000, loglevel="FATAL", fwdflat=False, bestpath=True, lm=str(lm.lm_path), dict=str(lm.dict_path)
    )
    embedder = MiniLMEmbedder()
    retriever = DemoRetriever(sections, embedder)

    wer: dict[str, Any] = {}
    offline: dict[str, Any] = {}
    for voice in voices:
        errs = {"general": 0, "domain": 0}
        cpu = {"general": 0.0, "domain": 0.0}
        ref_words = 0
        audio_s = 0.0
        rows = []
        for q in qs:
            pcm = read_pcm(files[voice][q["id"]])
            audio_s += len(pcm) / 32000
            ref = words(q["text"])
            ref_words += len(ref)
            hyps = {}
            for name, dec in (("general", general), ("domain", domain)):
                text, seconds = decode(dec, pcm)
                hyps[name] = text
                errs[name] += edit_distance(ref, words(text))
                cpu[name] += seconds
            retrieval = await retriever.retrieve(hyps["domain"], top_k=3)
            top = retrieval.passages[0] if retrieval.passages and retrieval.found else None
            answer = best_sentences(hyps["domain"], top.text) if top else ""
            rows.append({"id": q["id"], **correct(q, top.citation if top else None, answer)})
        wer[voice] = {
            "general_lm": round(errs["general"] / ref_words, 3),
            "domain_lm": round(errs["domain"] / ref_words, 3),
            "rtf_general": round(cpu["general"] / audio_s, 3),
            "rtf_domain": round(cpu["domain"] / audio_s, 3),
        }
        offline[voice] = {k: share(rows, k) for k in ("right_document", "right_section", "right_answer")}

    stages = build_stages(asr=ASROptions(lm_path=lm.lm_path, dict_path=lm.dict_path), embedder=embedder)
    await stages.warm()
    pipeline: dict[str, Any] = {}
    for voice in (v for v in args.pipeline_voices.split(",") if v):
        if voice not in files:
            files.update(render_all((voice,)))
        sem = asyncio.Semaphore(args.concurrency)

        async def one(q: dict[str, str], voice: str = voice, sem: asyncio.Semaphore = sem) -> dict[str, Any]:
            async with sem:
                got = await ask(stages, retriever, read_pcm(files[voice][q["id"]]), call_id=f"eval-{voice}-{q['id']}")
            ref = words(q["text"])
            return {
                "id": q["id"],
                "errors": edit_distance(ref, words(got.transcript)),
                "ref_words": len(ref),
                "total_ms": got.latency.total_ms if got.latency else None,
                **correct(q, got.citations[0] if got.citations else None, got.answer),
            }

        rows = list(await asyncio.gather(*(one(q) for q in qs)))
        totals = [r["total_ms"] for r in rows if r["total_ms"] is not None]
        pipeline[voice] = {
            "questions": len(rows),
            "wer": round(sum(r["errors"] for r in rows) / max(1, sum(r["ref_words"] for r in rows)), 3),
            **{k: share(rows, k) for k in ("right_document", "right_section", "right_answer")},
            "latency_p50_ms": round(statistics.median(totals), 1) if totals else None,
            "concurrent_calls": args.concurrency,
            "wrong": [r["id"] for r in rows if not r["right_answer"]],
        }

    print(
        json.dumps(
            {
                "questions": len(qs),
                "voices": list(voices),
                "domain_lm": {
                    "vocabulary": lm.vocabulary_size,
                    "sentences": lm.sentences,
                    "oov_tokens_dropped": lm.oov_tokens,
                    "build_s": round(lm_build_s, 2),
                },
                "retriever": "benchmarks.asr_eval.demo_kb.DemoRetriever (MiniLM cosine over demo sections)",
                "wer": wer,
                "answers_offline": offline,
                "answers_pipeline": pipeline,
                "targets": {"wer": 0.15, "right_answer": 0.85},
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
