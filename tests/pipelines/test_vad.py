"""The echo-aware volume gate: Silero on real speech over a simulated line, on a simulated clock."""

from __future__ import annotations

import numpy as np
import pytest
from pipecat.audio.vad.vad_analyzer import VADParams, VADState
from prometheus_client import REGISTRY

from pipelines.vad import (
    DoubleTalkDetector,
    EchoReference,
    SharedSileroVADAnalyzer,
    frame_rms,
    level_dbfs,
    load_silero,
)
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


VOICED_RMS = 300.0  # a 20 ms chunk the scripted caller of benchmarks.heldout_eval counts as speech


def turn_states(pcm: bytes, stop_below_peak: float, *, noise_rms: float = 0.0) -> list[VADState]:
    """The VAD state after each 20 ms chunk of ``pcm`` followed by a second of quiet (with white noise, if any)."""
    vad = SharedSileroVADAnalyzer(
        model=load_silero(), sample_rate=RATE, params=VADParams(start_secs=0.064), stop_below_peak=stop_below_peak
    )
    vad.set_sample_rate(RATE)
    line = np.concatenate([_samples(pcm), np.zeros(RATE)])
    line += np.random.default_rng(7).normal(0.0, noise_rms, line.size)
    audio = _pcm(line)
    return [vad._run_analyzer(audio[at : at + 2 * CHUNK]) for at in range(0, len(audio) - 2 * CHUNK + 1, 2 * CHUNK)]


def turns(states: list[VADState]) -> list[tuple[int, int]]:
    """(chunk the VAD said SPEAKING, chunk it said QUIET again) for each turn it heard."""
    out: list[tuple[int, int]] = []
    start: int | None = None
    for i, state in enumerate(states):
        if state == VADState.SPEAKING and start is None:
            start = i
        elif state == VADState.QUIET and start is not None:
            out.append((start, i))
            start = None
    return out


def last_voiced(pcm: bytes) -> int:
    return max(
        i for i in range(len(pcm) // (2 * CHUNK)) if frame_rms(pcm[i * 2 * CHUNK : (i + 1) * 2 * CHUNK]) >= VOICED_RMS
    )


@pytest.mark.parametrize("noise_rms", [0.0, 100.0])
@pytest.mark.parametrize(
    ("text", "voice"),
    [
        ("Hi, um, how much is the fastest plan every month?", "rms"),
        ("My router keeps dropping the connection at night.", "slt"),
        ("Can I pay my bill by bank transfer instead?", "kal16"),
    ],
)
def test_a_turn_ends_stop_secs_after_the_voice_fades(text: str, voice: str, noise_rms: float) -> None:
    """Real speech: the turn is one turn either way, it never ends before the caller's last voiced chunk, and
    with the rule it ends no later than Silero alone would end it (pipecat's own stop, window for window)."""
    pcm = flite_pcm(text, voice=voice)
    silero = turns(turn_states(pcm, 0.0, noise_rms=noise_rms))
    faded = turns(turn_states(pcm, 0.03, noise_rms=noise_rms))
    assert len(silero) == len(faded) == 1, (silero, faded)
    assert faded[0][0] == silero[0][0], "the start is Silero's alone"
    assert last_voiced(pcm) < faded[0][1] <= silero[0][1]


def test_the_rule_ends_the_turn_sooner_on_the_development_voices() -> None:
    """Over a few questions the stop comes at least 40 ms sooner in all (Silero outlasts a fading word)."""
    gained = []
    for voice in ("rms", "slt", "awb"):
        pcm = flite_pcm("I would like to know when my next bill is due, please.", voice=voice)
        silero = turns(turn_states(pcm, 0.0))[0][1]
        faded = turns(turn_states(pcm, 0.03))[0][1]
        gained.append((silero - faded) * 20)
    assert sum(gained) >= 3 * 40, f"ms sooner per voice: {gained}"


def test_a_soft_turn_after_a_loud_one_is_heard_whole() -> None:
    """The loudest window is the turn's own: after a shout (clipped at full scale), a caller 24 dB softer in the
    next turn ends exactly when that turn alone would."""
    loud = _pcm(_samples(flite_pcm("I need to talk to somebody about my account.", voice="rms")) * 4.0)
    soft = _pcm(_samples(flite_pcm("Yes, that is right, the one ending in four.", voice="rms")) * 0.5)
    gap = bytes(RATE * 2)  # a second of quiet between the two turns
    alone = turns(turn_states(soft, 0.03))
    after = turns(turn_states(loud + gap + soft, 0.03))
    offset = (len(loud) + len(gap)) // (2 * CHUNK)
    assert len(alone) == 1 and len(after) == 2
    # The soft turn's end; its start is the loudness gate's, not this rule's.
    assert after[1][1] - offset == alone[0][1]
