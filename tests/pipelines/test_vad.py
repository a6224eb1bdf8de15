"""The echo-aware volume gate: Silero on real speech over a simulated line, on a simulated clock."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.audio.vad.vad_analyzer import VADParams, VADState
from prometheus_client import REGISTRY

from pipelines.vad import DoubleTalkDetector, EchoReference, SharedSileroVADAnalyzer, level_dbfs, load_silero
from tests.pipelines.conftest import flite_pcm

RATE = 16000
CHUNK = 320  # 20 ms, as transports deliver it
ECHO_DELAY_CHUNKS = 3  # 60 ms from the line back to the microphone


class Clock:
    """Monotonic nanoseconds that move only when the test says so."""

    def __init__(self) -> None:
        self.ns = 1_000_000_000

    def __call__(self) -> int:
        return self.ns


def _samples(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float64)


def _pcm(samples: np.ndarray) -> bytes:
    return bytes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())


def run_line(
    *,
    agent: bytes,
    caller: bytes | None,
    caller_at: float,
    echo_gain: float,
    reference: bool,
    caller_gain: float = 1.0,
) -> tuple[list[VADState], SharedSileroVADAnalyzer]:
    """Play ``agent`` to the line and hear the microphone (echo + ``caller`` from ``caller_at`` s) in 20 ms chunks.

    Returns the VAD state after each chunk, and the analyser.
    """
    clock = Clock()
    ref = EchoReference(clock=clock)
    vad = SharedSileroVADAnalyzer(
        model=load_silero(), sample_rate=RATE, params=VADParams(start_secs=0.064), reference=ref if reference else None
    )
    vad.set_sample_rate(RATE)
    out = _samples(agent)
    total = len(out) + RATE
    near = np.zeros(total)
    delay = ECHO_DELAY_CHUNKS * CHUNK
    near[delay : delay + len(out)] += echo_gain * out
    if caller is not None:
        start = int(caller_at * RATE)
        voice = caller_gain * _samples(caller)[: total - start]
        near[start : start + len(voice)] += voice
    states: list[VADState] = []
    for at in range(0, total - CHUNK + 1, CHUNK):
        if at < len(out):
            ref.note(_pcm(out[at : at + CHUNK]))
        states.append(vad._run_analyzer(_pcm(near[at : at + CHUNK])))
        clock.ns += 20_000_000
    return states, vad


def first_speaking(states: list[VADState], after_chunk: int) -> int:
    """Chunks from ``after_chunk`` until the VAD first says SPEAKING."""
    return next(i for i, s in enumerate(states) if i >= after_chunk and s == VADState.SPEAKING) - after_chunk


@pytest.fixture(scope="module")
def agent_answer() -> bytes:
    return flite_pcm(
        "Password reset links are valid for thirty minutes. If the link has expired, request a new one from the "
        "sign in page, and check your spam folder if the email does not arrive."
    )


@pytest.fixture(scope="module")
def interruption() -> bytes:
    return flite_pcm("Sorry, can I ask something else?", voice="rms")


def test_echo_alone_never_opens_the_gate_early(agent_answer: bytes) -> None:
    """Echo at -10 dB (no echo cancellation): the gate behaves exactly as pipecat's, window for window."""
    with_ref, vad = run_line(agent=agent_answer, caller=None, caller_at=0, echo_gain=0.3, reference=True)
    without, _ = run_line(agent=agent_answer, caller=None, caller_at=0, echo_gain=0.3, reference=False)
    assert vad.fast_onsets == 0
    assert with_ref == without


@pytest.mark.parametrize("caller_db", [0, -12])
def test_a_caller_over_the_agent_opens_the_gate_sooner(
    agent_answer: bytes, interruption: bytes, caller_db: float
) -> None:
    """Echo cancelled upstream (a browser, a phone): the loss measured is large, so even a caller 12 dB below
    the agent passes the gate within a window or two of speaking, where pipecat's smoothed gate takes six."""
    at = 2.0
    chunk = int(at * RATE) // CHUNK
    gain = 10 ** (caller_db / 20)
    counted = REGISTRY.get_sample_value("voxdesk_pipeline_vad_fast_onsets_total") or 0.0
    fast, vad = run_line(
        agent=agent_answer, caller=interruption, caller_at=at, echo_gain=0.0, reference=True, caller_gain=gain
    )
    assert (REGISTRY.get_sample_value("voxdesk_pipeline_vad_fast_onsets_total") or 0.0) - counted == vad.fast_onsets
    slow, _ = run_line(
        agent=agent_answer, caller=interruption, caller_at=at, echo_gain=0.0, reference=False, caller_gain=gain
    )
    assert fast[:chunk] == slow[:chunk] == [VADState.QUIET] * chunk
    assert vad.fast_onsets > 0
    assert vad._double_talk is not None and vad._double_talk.allowed_db() > 12 - caller_db
    took, pipecat_took = first_speaking(fast, chunk), first_speaking(slow, chunk)
    assert took <= pipecat_took - 3, f"speech start after {took * 20} ms, pipecat's gate {pipecat_took * 20} ms"


def test_detector_assumes_the_margin_until_it_has_measured_the_echo() -> None:
    clock = Clock()
    ref = EchoReference(clock=clock)
    detector = DoubleTalkDetector(ref, echo_margin_db=6.0, safety_db=3.0, echo_delay_secs=0.1, min_observations=4)
    loud = _pcm(np.full(CHUNK, 8000.0))  # about -12 dBFS
    assert not detector.listen(-20.0, caller_quiet=True), "the agent has not spoken: nothing to tell apart"
    for _ in range(20):
        ref.note(loud)
        clock.ns += 20_000_000
    agent = level_dbfs(loud)
    assert detector.allowed_db() == 6.0
    assert detector.listen(agent - 5, caller_quiet=False)
    assert not detector.listen(agent - 7, caller_quiet=False)
    # The caller's speech is never measured as echo, however long it goes on.
    for _ in range(20):
        detector.listen(agent - 2, caller_quiet=False)
        clock.ns += 32_000_000
    assert detector.allowed_db() == 6.0
    # The microphone hears the agent at -20 dB while the caller is quiet: the loss is 20 dB, 17 allowed.
    for _ in range(10):
        ref.note(loud)
        detector.listen(agent - 20, caller_quiet=True)
        clock.ns += 32_000_000
    assert detector.allowed_db() == pytest.approx(17.0)
    assert detector.listen(agent - 16, caller_quiet=False)
    assert not detector.listen(agent - 18, caller_quiet=False)
