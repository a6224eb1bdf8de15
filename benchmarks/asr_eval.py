"""Spoken evaluation on the demo knowledge base: WER with and without the KB-adapted LM, and right answers.

Renders 60 caller questions with flite (slt, rms, awb, kal16) and espeak-ng into benchmarks/out/ (cached), then:

- ``wer``: pocketsphinx word error rate per voice, decoded the way calls decode (20 ms frames, streaming, one
  pass): the general model; the domain LM built from the knowledge base (``pipelines.asr.domain_lm``); the
  domain LM with the acoustic model adapted (``pipelines.asr.acoustic_adaptation``) on knowledge-base
  sentences, not the questions, spoken by every voice; and adapted on the other voices only (this voice unseen);
- ``answers_offline``: per voice, the transcript → retriever → extractive answer, checked against the
  expected section and fact (domain LM, and domain LM with the adapted acoustic model);

The knowledge base is the product's: the demo documents as ``voxdesk ingest`` stores them, searched by the
shipped knowledge service through the server's retriever, the domain LM built from the text the server builds it
from (``benchmarks.product_kb``).
- ``answers_pipeline``: per chosen voice, the whole audio path in-process (memory transport at real time →
  Silero VAD → streaming pocketsphinx with the adapted model → RAG → extractive brain → flite), several
  calls at once.

Prints one JSON object. Run: ``.venv/bin/python benchmarks/asr_eval.py [--pipeline-voices slt,espeak-en-us]
[--limit N] [--adapt-sentences 0]`` (0: no acoustic adaptation).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pocketsphinx  # noqa: E402
from loguru import logger  # noqa: E402

from benchmarks.asr_eval.adaptation import adaptation_sentences, build_models, voice_evidence  # noqa: E402
from benchmarks.asr_eval.harness import ask, read_pcm  # noqa: E402
from benchmarks.asr_eval.render import OUT, VOICES, questions, render_all  # noqa: E402
from benchmarks.asr_eval.scoring import correct, decode, edit_distance, share  # noqa: E402
from benchmarks.product_kb import DemoKnowledge, open_demo_knowledge  # noqa: E402
from control_api.logging_setup import configure_logging  # noqa: E402
from pipelines.asr.acoustic_adaptation import default_acoustic_model  # noqa: E402
from pipelines.asr.acoustic_adaptation import transcript_words as words  # noqa: E402
from pipelines.asr.domain_lm import build_domain_lm  # noqa: E402
from pipelines.asr.sphinx_model import SphinxAcousticModel  # noqa: E402
from pipelines.brain.extractive import best_sentences  # noqa: E402
from pipelines.build import build_stages  # noqa: E402
from pipelines.options import ASROptions  # noqa: E402


async def main() -> None:
    """Run the evaluation on a private copy of the ingested demo knowledge base and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voices", default=",".join(VOICES))
    parser.add_argument("--pipeline-voices", default="slt,espeak-en-us")
    parser.add_argument("--adapt-sentences", type=int, default=60, help="per voice (0: no acoustic adaptation)")
    parser.add_argument("--tau", type=float, default=10.0, help="MAP prior weight in frames")
    parser.add_argument("--concurrency", type=int, default=3)
    parser.add_argument("--limit", type=int, default=0, help="only the first N questions")
    args = parser.parse_args()
    configure_logging(level="WARNING")  # on stderr: stdout carries the report
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    with tempfile.TemporaryDirectory(prefix="asr-eval-") as tmp:
        async with open_demo_knowledge(Path(tmp) / "data") as kb:
            await evaluate(kb, args)


async def evaluate(kb: DemoKnowledge, args: argparse.Namespace) -> None:
    """Run the evaluation and print JSON."""
    voices = tuple(v for v in args.voices.split(",") if v)
    qs = questions()[: args.limit or None]
    files = render_all(voices)
    t0 = time.perf_counter()
    lm = build_domain_lm(await kb.corpus(), OUT / "models")
    lm_build_s = time.perf_counter() - t0

    adaptation: dict[str, Any] = {}
    adapted: Path | None = None
    held_out: dict[str, Path] = {}
    if args.adapt_sentences > 0:
        t0 = time.perf_counter()
        model = SphinxAcousticModel.load(default_acoustic_model())
        statements = await kb.service.corpus_text()
        sentences = adaptation_sentences(statements, [q["text"] for q in questions()], args.adapt_sentences)
        evidence = {v: voice_evidence(model, v, sentences, OUT / "adaptation") for v in voices}
        adapted, held_out = build_models(evidence, OUT / "acoustic", tau=args.tau)
        adaptation = {
            "method": f"MAP on Gaussian means, tau {args.tau:g} frames",
            "sentences_per_voice": len(sentences),
            "aligned": {v: e.stats.utterances for v, e in evidence.items()},
            "audio_secs_per_voice": {v: round(e.stats.frames / 100, 1) for v, e in evidence.items()},
            "build_s": round(time.perf_counter() - t0, 1),
        }

    # The decoder configuration the pocketsphinx backend uses for calls.
    def decoder(hmm: Path | None = None, *, general: bool = False) -> pocketsphinx.Decoder:
        kwargs: dict[str, Any] = {"samprate": 16000, "loglevel": "FATAL", "fwdflat": False, "bestpath": True}
        if not general:
            kwargs.update(lm=str(lm.lm_path), dict=str(lm.dict_path))
        if hmm is not None:
            kwargs["hmm"] = str(hmm)
        return pocketsphinx.Decoder(**kwargs)

    decoders = {"general": decoder(general=True), "domain": decoder()}
    if adapted is not None:
        decoders["adapted"] = decoder(adapted)
    retriever = kb.retriever

    wer: dict[str, Any] = {}
    offline: dict[str, Any] = {}
    for voice in voices:
        voice_decoders = dict(decoders)
        if voice in held_out:
            voice_decoders["voice_unseen"] = decoder(held_out[voice])
        errs = dict.fromkeys(voice_decoders, 0)
        cpu = dict.fromkeys(voice_decoders, 0.0)
        ref_words = 0
        audio_s = 0.0
        rows: dict[str, list[dict[str, Any]]] = {"domain": [], "adapted": []}
        for q in qs:
            pcm = read_pcm(files[voice][q["id"]])
            audio_s += len(pcm) / 32000
            ref = words(q["text"])
            ref_words += len(ref)
            hyps = {}
            for name, dec in voice_decoders.items():
                text, seconds = decode(dec, pcm)
                hyps[name] = text
                errs[name] += edit_distance(ref, words(text))
                cpu[name] += seconds
            for name in (n for n in rows if n in hyps):
                retrieval = await retriever.retrieve(hyps[name], top_k=3, log=False)
                top = retrieval.passages[0] if retrieval.passages and retrieval.found else None
                answer = best_sentences(hyps[name], top.body, closeness=top.closeness) if top else ""
                rows[name].append({"id": q["id"], **correct(q, top.citation if top else None, answer)})
        labels = {
            "general": "general_lm",
            "domain": "domain_lm",
            "adapted": "domain_lm_adapted",
            "voice_unseen": "domain_lm_adapted_voice_unseen",
        }
        wer[voice] = {labels[n]: round(errs[n] / ref_words, 3) for n in voice_decoders}
        for name in (n for n in ("general", "domain", "adapted") if n in cpu):
            wer[voice][f"rtf_{name}"] = round(cpu[name] / audio_s, 3)
        offline[voice] = {
            name: {k: share(r, k) for k in ("right_document", "right_section", "right_answer")}
            for name, r in rows.items()
            if r
        }

    asr_options = ASROptions(lm_path=lm.lm_path, dict_path=lm.dict_path, acoustic_model=adapted)
    stages = build_stages(asr=asr_options, embedder=kb.embedder)
    await stages.warm()
    pipeline: dict[str, Any] = {}
    for voice in (v for v in args.pipeline_voices.split(",") if v):
        if voice not in files:
            files.update(render_all((voice,)))
        sem = asyncio.Semaphore(args.concurrency)

        async def one(q: dict[str, str], voice: str = voice, sem: asyncio.Semaphore = sem) -> dict[str, Any]:
            async with sem:
                got = await ask(
                    stages,
                    retriever,
                    read_pcm(files[voice][q["id"]]),
                    call_id=f"eval-{voice}-{q['id']}",
                    open_call=retriever.open_call,
                )
            ref = words(q["text"])
            return {
                "id": q["id"],
                "errors": edit_distance(ref, words(got.transcript)),
                "ref_words": len(ref),
                "total_ms": got.latency.total_ms if got.latency else None,
                **correct(q, got.citations[0] if got.citations else None, got.answer),
            }

        spoken = list(await asyncio.gather(*(one(q) for q in qs)))
        totals = [r["total_ms"] for r in spoken if r["total_ms"] is not None]
        pipeline[voice] = {
            "questions": len(spoken),
            "wer": round(sum(r["errors"] for r in spoken) / max(1, sum(r["ref_words"] for r in spoken)), 3),
            **{k: share(spoken, k) for k in ("right_document", "right_section", "right_answer")},
            "latency_p50_ms": round(statistics.median(totals), 1) if totals else None,
            "concurrent_calls": args.concurrency,
            "wrong": [r["id"] for r in spoken if not r["right_answer"]],
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
                "acoustic_adaptation": adaptation or None,
                "retriever": "the shipped knowledge service over the ingested demo KB, through the server's "
                "KnowledgeRetriever (benchmarks.product_kb)",
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
