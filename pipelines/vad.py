"""The caller's voice-activity detector: Silero over a shared model, with an echo-aware volume gate.

pipecat's VAD counts a 32 ms window as speech when Silero's confidence and the loudness both pass their
thresholds. The loudness it gates on (``min_volume``) is a 400 ms BS.1770 measure smoothed by 20 % per window,
so from silence even loud speech needs about six windows (190 ms) to pass: that keeps short clicks and the
agent's own echo out, and it is most of the time a barge-in takes.

While the agent is speaking, :class:`SharedSileroVADAnalyzer` opens the gate at once for a window that is
plainly the caller and not the agent's echo (:class:`DoubleTalkDetector`): its unsmoothed loudness already
passes ``min_volume``, and it is louder than the agent's echo can be. How loud the echo can be is measured, as
echo cancellers do: while the caller is quiet and the agent speaks, the microphone hears only the echo, and its
level against the agent's audio (the far-end reference, :class:`EchoReference`) is the echo return loss. A
line with echo cancellation (a browser, most phones) returns next to nothing, so any clear caller speech opens
the gate; a line without it returns the agent at, say, -10 dB, and only speech well above that does. Until the
loss has been measured the detector assumes ``echo_margin_db`` (6 dB, the Geigel detector's assumption).
Otherwise the gate is pipecat's, unchanged, and the barge-in policy sorts echo from speech as before.

With ``stop_below_peak`` set (off by default), a turn ends ``stop_secs`` after the caller's voice fades, not after
Silero lets go of it: while the caller speaks, a window quieter than that share of the turn's loudest (0.03 is
-30 dB) counts toward the stop even when Silero still hears voice in it. Silero's confidence outlasts a fading
word by one to four windows (40-80 ms at the median on flite voices), and a turn waits that long on top of
``stop_secs``; the same hangover bridges a 200-280 ms pause between two sentences, which the rule ends the turn in.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from importlib import resources

import numpy as np
from pipecat.audio.vad.silero import SileroOnnxModel, SileroVADAnalyzer
from pipecat.audio.vad.vad_analyzer import VADParams, VADState

from pipelines.compat import usable
from pipelines.metrics import VAD_FAST_ONSETS
from pipelines.options import VADOptions

__all__ = [
    "QUIET_FLOOR_RMS",
    "QUIET_PEAK",
    "DoubleTalkDetector",
    "EchoReference",
    "SharedSileroVADAnalyzer",
    "frame_rms",
    "level_dbfs",
    "load_silero",
    "under_peak",
    "vad_params",
]

# A 32 ms window whose samples all stay within this (about -54 dBFS) is silence to any VAD: Silero is not run on
# it. Digital silence (a muted or DTX microphone, a quiet line) then costs a buffer append, not a model call.
QUIET_PEAK = 64
QUIET_RESET_WINDOWS = 10
# A frame under this RMS (about -50 dBFS) is quiet however soft the caller's loudest frame was.
QUIET_FLOOR_RMS = 100.0

# The library patches (pipelines/compat) SharedSileroVADAnalyzer applies; each steps aside on its own.
SHARED_SESSION = "pipecat.silero_shared_session"
QUIET_WINDOWS_INLINE = "pipecat.vad_quiet_windows_inline"
ECHO_AWARE_GATE = "pipecat.vad_echo_aware_gate"
STOP_BELOW_PEAK = "pipecat.vad_stop_below_peak"


def vad_params(options: VADOptions) -> VADParams:
    """Pipecat's VAD thresholds from the product's VAD options (one place for a call's VAD and the benchmarks)."""
    return VADParams(
        confidence=options.confidence,
        start_secs=options.start_secs,
        stop_secs=options.stop_secs,
        min_volume=options.min_volume,
    )


def load_silero() -> SileroOnnxModel:
    """Silero's ONNX model as pipecat bundles it (CPU; load once per process)."""
    path = str(resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx"))
    return SileroOnnxModel(path, force_onnx_cpu=True)  # type: ignore[no-untyped-call]  # untyped in pipecat


def frame_rms(pcm: bytes) -> float:
    """RMS of 16-bit little-endian PCM (0 for none)."""
    samples = np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).astype(np.float32)
    return float(np.sqrt(np.dot(samples, samples) / samples.size)) if samples.size else 0.0


def under_peak(level: float, peak: float, share: float) -> bool:
    """Whether a frame at RMS ``level`` is quiet in an utterance whose loudest frame so far is ``peak``.

    Quiet: under ``share`` of the peak, or under :data:`QUIET_FLOOR_RMS`. The VAD's stop rule and the recogniser's
    speculative start both judge the caller's pauses by it, each with its own share.
    """
    return level < max(peak * share, QUIET_FLOOR_RMS)


def level_dbfs(pcm: bytes) -> float:
    """RMS level of 16-bit little-endian PCM in dB below full scale (``-inf`` for silence)."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32)
    if samples.size == 0:
        return -math.inf
    power = float(np.dot(samples, samples)) / samples.size
    return 10.0 * math.log10(power / 32768.0**2) if power > 0 else -math.inf


class EchoReference:
    """How loud the agent's audio was as it went to the line, over the last ``window_secs``.

    The output side notes each chunk it writes (the event loop); the VAD reads the loudest level from its own
    thread, hence the lock.

    Args:
        window_secs: How far back a chunk of the agent's audio can still come back as echo (the echo path's
            delay: play-out buffers, the network, the room).
        clock: Monotonic nanoseconds (shared with the detector reading this reference).
    """

    def __init__(self, *, window_secs: float = 1.0, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.clock = clock
        self._window_ns = int(window_secs * 1e9)
        self._levels: deque[tuple[int, float]] = deque()
        self._lock = threading.Lock()

    def note(self, pcm: bytes) -> None:
        """Record a chunk of the agent's audio written to the line now."""
        level = level_dbfs(pcm)
        now = self.clock()
        with self._lock:
            self._levels.append((now, level))
            self._prune(now)

    def loudest_pair(self, older_than_secs: float) -> tuple[float | None, float | None]:
        """The loudest chunk within the window, and the loudest written at least ``older_than_secs`` ago.

        ``None`` for either: no such chunk (the agent has been silent).
        """
        now = self.clock()
        until = now - int(older_than_secs * 1e9)
        loudest = returned = -math.inf
        with self._lock:
            self._prune(now)
            for at, level in self._levels:
                if level > loudest:
                    loudest = level
                if at <= until and level > returned:
                    returned = level
        return (loudest if loudest > -math.inf else None, returned if returned > -math.inf else None)

    def _prune(self, now: int) -> None:
        while self._levels and now - self._levels[0][0] > self._window_ns:
            self._levels.popleft()


class DoubleTalkDetector:
    """Tells the caller's voice from the agent's echo by level, against a measured echo return loss.

    A window heard while the caller is quiet measures the echo: its level against the agent's loudest audio
    that has had time to come back (``echo_delay_secs`` old or more). It counts once the caller has stayed quiet
    ``echo_delay_secs`` longer, so the first windows of the caller's own speech are never taken for echo.

    Args:
        reference: The agent's audio as it went to the line.
        echo_margin_db: The echo return loss assumed until one has been measured.
        safety_db: How far above the loudest echo measured a window must be to be the caller's.
        echo_delay_secs: The longest the agent's audio takes to come back as echo (play-out buffers, the
            network, the room).
        memory_secs: How long a measurement of the echo counts (the echo path changes: a speakerphone, a
            headset put down).
        min_observations: Measurements needed before they are trusted (0.25 s of 32 ms windows).
    """

    def __init__(
        self,
        reference: EchoReference,
        *,
        echo_margin_db: float = 6.0,
        safety_db: float = 3.0,
        echo_delay_secs: float = 0.3,
        memory_secs: float = 5.0,
        min_observations: int = 8,
    ) -> None:
        self._reference = reference
        self._echo_margin_db = echo_margin_db
        self._safety_db = safety_db
        self._delay_secs = echo_delay_secs
        self._delay_ns = int(echo_delay_secs * 1e9)
        self._memory_ns = int(memory_secs * 1e9)
        self._min_observations = min_observations
        self._pending: deque[tuple[int, float]] = deque()
        # The measured losses within ``memory_secs``, as a monotonic queue: the front is the smallest.
        self._losses: deque[tuple[int, float]] = deque()
        self._measured = 0

    def listen(self, level: float, *, caller_quiet: bool) -> bool:
        """Whether a window at ``level`` dBFS, heard while the agent speaks, is louder than its echo can be.

        Args:
            level: The window's RMS level.
            caller_quiet: Whether the caller was silent up to this window (it may then measure the echo).

        Returns:
            ``False`` as well when the agent has been silent (there is no echo to tell apart).
        """
        agent, returned = self._reference.loudest_pair(self._delay_secs)
        if agent is None:
            self._pending.clear()
            return False
        now = self._reference.clock()
        if not caller_quiet:
            self._pending.clear()
        elif returned is not None:
            self._pending.append((now, returned - level))
        while self._pending and now - self._pending[0][0] >= self._delay_ns:
            self._measure(*self._pending.popleft())
        while self._losses and now - self._losses[0][0] > self._memory_ns:
            self._losses.popleft()
        return level >= agent - self.allowed_db()

    def _measure(self, at: int, loss: float) -> None:
        # A newer, smaller loss makes the larger ones before it irrelevant to the minimum.
        while self._losses and self._losses[-1][1] >= loss:
            self._losses.pop()
        self._losses.append((at, loss))
        self._measured += 1

    def allowed_db(self) -> float:
        """How far below the agent's loudest recent audio a window may be and still be the caller's."""
        if self._measured < self._min_observations or not self._losses:
            return self._echo_margin_db
        return max(self._echo_margin_db, self._losses[0][1] - self._safety_db)


class SharedSileroVADAnalyzer(SileroVADAnalyzer):
    """Silero VAD for one call over a process-wide ONNX session, with the echo-aware gate (module docstring).

    The ONNX session is shared (its ``run`` is thread-safe and stateless); the recurrent state is per call.
    pipecat hands every 20 ms frame to a thread; here a frame goes to the thread only when it completes a
    window that is not silence (:data:`QUIET_PEAK`), everything else is analysed inline.

    The shared session, the inline analysis and the echo-aware gate reach into pipecat's analyser; each is a
    patch of :mod:`pipelines.compat` (:data:`SHARED_SESSION`, :data:`QUIET_WINDOWS_INLINE`,
    :data:`ECHO_AWARE_GATE`) and steps aside on its own when pipecat differs from what it was written against:
    the analyser then behaves as pipecat's in that respect (its own session, every frame on the thread, the
    smoothed gate only).

    Args:
        model: The process-wide model (only its session is shared).
        sample_rate: Audio sample rate.
        params: VAD thresholds.
        reference: The agent's outgoing audio; ``None``: pipecat's smoothed gate only.
        echo_margin_db: The echo return loss assumed until one is measured (:class:`DoubleTalkDetector`).
        stop_below_peak: While the caller speaks, a window under this share of the turn's loudest counts toward
            the stop whatever Silero says (module docstring; :data:`STOP_BELOW_PEAK`); 0: Silero alone.
    """

    def __init__(
        self,
        *,
        model: SileroOnnxModel,
        sample_rate: int | None = None,
        params: VADParams | None = None,
        reference: EchoReference | None = None,
        echo_margin_db: float = 6.0,
        stop_below_peak: float = 0.0,
    ) -> None:
        if usable(SHARED_SESSION):
            # SileroVADAnalyzer.__init__ loads a new ONNX session per instance: set up what it would instead.
            super(SileroVADAnalyzer, self).__init__(sample_rate=sample_rate, params=params)
            self._model = copy.copy(model)
            self._model.reset_states()  # type: ignore[no-untyped-call]  # pipecat's SileroOnnxModel is untyped
            self._windows_since_reset = 0
            self._low_confidence_windows = 0
        else:
            super().__init__(sample_rate=sample_rate, params=params)
        self._inline = usable(QUIET_WINDOWS_INLINE)
        self._quiet_windows = 0
        self._double_talk = (
            DoubleTalkDetector(reference, echo_margin_db=echo_margin_db)
            if reference is not None and usable(ECHO_AWARE_GATE)
            else None
        )
        self.fast_onsets = 0
        self._stop_below_peak = stop_below_peak if stop_below_peak > 0 and usable(STOP_BELOW_PEAK) else 0.0
        self._turn_peak = 0.0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        """The VAD state after ``buffer``; the model runs on the analyser's thread, the rest inline."""
        if not self._inline:
            return await super().analyze_audio(buffer)
        window_bytes = self._vad_frames_num_bytes
        pending = len(self._vad_buffer) + len(buffer)
        if pending < window_bytes or _is_quiet(self._vad_buffer + buffer):
            return self._run_analyzer(buffer)
        return await super().analyze_audio(buffer)

    def voice_confidence(self, buffer: bytes) -> float:
        """Silero's speech probability for one window (0 for a silent window, without running the model).

        0 as well for a window of a turn in progress that has faded under ``stop_below_peak`` of the turn's
        loudest; the model still hears it, so its recurrent state follows the audio.
        """
        faded = self._faded(buffer)
        if _is_quiet(buffer):
            self._quiet_windows += 1
            return 0.0
        if self._quiet_windows >= QUIET_RESET_WINDOWS:
            # After a stretch the model did not hear, start it afresh, as at the start of a stream.
            self._model.reset_states()  # type: ignore[no-untyped-call]  # untyped in pipecat
        self._quiet_windows = 0
        confidence = float(np.asarray(super().voice_confidence(buffer)).reshape(-1)[0])
        return 0.0 if faded else confidence

    def _faded(self, window: bytes) -> bool:
        """Whether ``window``, in a turn the VAD hears as speech, is quiet against the turn's loudest window."""
        if not self._stop_below_peak:
            return False
        level = frame_rms(window)
        # pipecat's state before this window: the peak is the loudest since the VAD last heard nothing.
        state = self._vad_state
        self._turn_peak = level if state == VADState.QUIET else max(self._turn_peak, level)
        return state in (VADState.SPEAKING, VADState.STOPPING) and under_peak(
            level, self._turn_peak, self._stop_below_peak
        )

    def _get_smoothed_volume(self, audio: bytes) -> float:
        """The smoothed loudness (pipecat's), raised to the gate for a window that is the caller over the agent."""
        volume: float = super()._get_smoothed_volume(audio)
        if self._double_talk is None:
            return volume
        caller_quiet = self._vad_state == VADState.QUIET
        over_agent = self._double_talk.listen(level_dbfs(audio), caller_quiet=caller_quiet)
        min_volume = self._params.min_volume
        if volume >= min_volume or not over_agent or self._volume_tracker.volume < min_volume:
            return volume
        self.fast_onsets += 1
        VAD_FAST_ONSETS.inc()
        # The smoothing goes on from the gate's level, as if the caller's loudness had been there all along.
        return min_volume


def _is_quiet(pcm: bytes) -> bool:
    samples = np.frombuffer(pcm, dtype=np.int16)
    return samples.size == 0 or (int(samples.max()) <= QUIET_PEAK and int(samples.min()) >= -QUIET_PEAK)
