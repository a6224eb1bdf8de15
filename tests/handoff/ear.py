"""The handoff tests' ear: Whisper tiny.en, the product's own local model, recognising what a side received.

Both sides of a handoff hear the other through a lossy path (Opus over WebRTC, μ-law over RTP). pocketsphinx's
default model, given a flite voice after that path on a busy 2-core machine, heard "My order number is one two
three four" as "iron line man nine floor"; Whisper tolerates the codec and the voice, so a miss means the audio
did not arrive, not that the test's recogniser is weak.
"""

from __future__ import annotations

import numpy as np

from tests.pipelines.conftest import whisper_model_dir


class WhisperEar:
    """Whisper tiny.en (int8, greedy, no VAD) turning received 16-bit PCM into the set of words it holds."""

    def __init__(self) -> None:
        from faster_whisper import WhisperModel

        self._model = WhisperModel(str(whisper_model_dir()), device="cpu", compute_type="int8", cpu_threads=2)

    def words(self, pcm: np.ndarray | bytes, rate: int = 16000) -> set[str]:
        """The lower-cased words Whisper hears in ``pcm`` (mono int16 at ``rate`` Hz)."""
        if isinstance(pcm, bytes):
            pcm = np.frombuffer(pcm, dtype=np.int16)
        samples = pcm.astype(np.float32) / 32768.0
        if rate != 16000:
            x = np.arange(int(len(samples) * 16000 / rate)) * rate / 16000
            samples = np.interp(x, np.arange(len(samples)), samples).astype(np.float32)
        segments, _ = self._model.transcribe(samples, language="en", beam_size=1, vad_filter=False)
        text = " ".join(s.text for s in segments).lower()
        return {w.strip(".,?!'\"") for w in text.split()}
