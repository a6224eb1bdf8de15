"""Streaming pocketsphinx in a worker process: same words as on a thread, survives the worker's death."""

from __future__ import annotations

import os
import queue
import signal
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from pipelines.asr.domain_lm import build_domain_lm
from pipelines.asr.pocketsphinx import PocketsphinxBackend
from pipelines.options import ASROptions
from tests.pipelines.conftest import flite_pcm

pytestmark = pytest.mark.integration

CORPUS = """# Deliveries
We send your router by tracked courier. Delivery takes 3 to 5 working days and is free.
If you are not home, the courier tries once more the next working day.
# Returns
Return the router within 30 days. We email you a prepaid returns label.
"""
QUESTION = "How long does delivery of the router take?"

Result = tuple[str, str, float, float, float | None]


class Stream:
    """A backend stream fed like a call feeds it (20 ms frames), its results collected."""

    def __init__(self, backend: PocketsphinxBackend) -> None:
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.decoder = backend.open_stream(self.results.put, sample_rate=16000, interim_every_frames=3)

    def say(self, pcm: bytes, *, stop_after: int | None = None) -> None:
        self.decoder.start_utterance(pcm[:3200])  # 100 ms of pre-roll, as the VAD hands it on
        end = len(pcm) if stop_after is None else stop_after
        for i in range(3200, end, 640):
            self.decoder.feed(pcm[i : i + 640])

    def final(self, timeout: float = 20.0) -> Result:
        deadline = time.monotonic() + timeout
        while True:
            result = self.results.get(timeout=max(0.01, deadline - time.monotonic()))
            if result[0] in ("final", "error"):
                return result


@pytest.fixture(scope="module")
def domain_lm(tmp_path_factory: pytest.TempPathFactory) -> ASROptions:
    model = build_domain_lm(CORPUS, tmp_path_factory.mktemp("lm"))
    return ASROptions(lm_path=model.lm_path, dict_path=model.dict_path, prewarm_decoders=0)


def _backend(options: ASROptions, processes: int) -> PocketsphinxBackend:
    return PocketsphinxBackend.prewarm(
        ASROptions(lm_path=options.lm_path, dict_path=options.dict_path, prewarm_decoders=0, processes=processes)
    )


def test_a_worker_process_hears_what_a_thread_hears(domain_lm: ASROptions) -> None:
    pcm = flite_pcm(QUESTION)
    in_process = _backend(domain_lm, processes=0)
    in_worker = _backend(domain_lm, processes=1)
    try:
        worker = in_worker.live_worker()
        assert worker is not None and worker.process.poll() is None
        assert in_process.live_worker() is None
        heard = {}
        for name, backend in (("thread", in_process), ("worker", in_worker)):
            stream = Stream(backend)
            stream.say(pcm)
            stream.decoder.end_utterance()
            kind, text, decode_ms, audio_ms, finalize_ms, alternatives, confidence = stream.final()
            assert kind == "final", text
            # What the recogniser knows beyond its best guess: other N-best hypotheses, word posteriors.
            assert alternatives and text not in alternatives and len(set(alternatives)) == len(alternatives)
            assert confidence is not None and 0.0 < confidence <= 1.0
            assert decode_ms > 0 and audio_ms == pytest.approx(len(pcm) / 32, rel=0.05)
            assert finalize_ms is not None and finalize_ms >= 0
            heard[name] = text
            stream.decoder.close()
        assert heard["worker"] == heard["thread"]
        assert "delivery" in heard["worker"] and "router" in heard["worker"]
        assert worker.streams == 0  # closed streams are forgotten
    finally:
        in_process.close()
        in_worker.close()
    assert worker.process.poll() is not None  # closing the backend stops its worker


def test_by_default_half_the_cpus_decode_at_least_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    backend = PocketsphinxBackend.prewarm(ASROptions(prewarm_decoders=0))
    try:
        assert len(backend.supervisor.workers) == 2 and backend.live_worker() is not None
    finally:
        backend.close()


def test_a_killed_worker_fails_the_utterance_in_progress_and_is_replaced(domain_lm: ASROptions) -> None:
    pcm = flite_pcm(QUESTION)
    backend = _backend(domain_lm, processes=1)
    try:
        first = backend.live_worker()
        assert first is not None
        exits = REGISTRY.get_sample_value("voxdesk_pipeline_asr_worker_exits_total") or 0.0
        stream = Stream(backend)
        stream.say(pcm, stop_after=len(pcm) // 2)
        os.kill(first.process.pid, signal.SIGKILL)
        kind, reason, *_ = stream.final()
        assert kind == "error" and "exited" in reason
        deadline = time.monotonic() + 30
        while (backend.live_worker() in (None, first)) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = backend.live_worker()
        assert second is not None and second is not first and second.process.pid != first.process.pid
        assert (REGISTRY.get_sample_value("voxdesk_pipeline_asr_worker_exits_total") or 0.0) == exits + 1
        # The same call's next utterance goes to the new worker and is heard.
        stream.say(pcm)
        stream.decoder.end_utterance()
        kind, text, *_ = stream.final()
        assert kind == "final" and "router" in text
        stream.decoder.close()
    finally:
        backend.close()


def test_a_rebuilt_model_reaches_the_worker(tmp_path: Path) -> None:
    before = build_domain_lm(CORPUS, tmp_path)
    backend = PocketsphinxBackend.prewarm(
        ASROptions(lm_path=before.lm_path, dict_path=before.dict_path, prewarm_decoders=0, processes=1)
    )
    pcm = flite_pcm("The zebra crossing is closed.")
    try:
        stream = Stream(backend)
        stream.say(pcm)
        stream.decoder.end_utterance()
        assert "zebra" not in stream.final()[1].split()
        stream.decoder.close()
        after = build_domain_lm(CORPUS + "\nThe zebra crossing outside the depot is closed.\n", tmp_path)
        backend.adapt(lm_path=str(after.lm_path), dict_path=str(after.dict_path))
        # The worker reads its pipe in order: the new model is loaded before the next stream starts.
        stream = Stream(backend)
        stream.say(pcm)
        stream.decoder.end_utterance()
        assert "zebra crossing" in stream.final()[1]
        stream.decoder.close()
    finally:
        backend.close()
