"""Whisper in a worker process: the second opinion on a caller's final utterance, off the server's cores' GIL.

Whisper (tiny.en, CTranslate2, int8, one thread, greedy). faster-whisper's ``transcribe`` pads every utterance to
Whisper's 30 s window (3 000 mel frames), about 0.3-0.5 s of a core for a 2 s question. :func:`decode` instead
encodes a short window, the utterance's own frames padded (as ``transcribe`` pads: zeros) to the window the server
passes as the worker's second argument (``pipeline.asr.whisper.window_s``; ``WINDOW_FRAMES``, 10 s, by default),
and runs the decoder itself (``generate`` with ``transcribe``'s prompt layout, blank and non-speech suppression):
about a third of the time. The model was trained on 30 s windows, and on a short one it tends to
say the sentence again after it ends (with 3-6 s windows: many times, garbled; with 10-15 s: at most once), so the
output is bounded by the audio's duration (``TOKENS_PER_SECOND``) and a repeat of its opening words is dropped
(:func:`drop_repeat`). :func:`decode_full_window` is ``transcribe`` as before (the benchmark compares the two).

In the server the decode's time would be taken from the event loop carrying every call's audio (CTranslate2
releases the GIL, but the feature extraction is numpy on the calling thread), so each worker process decodes one
utterance at a time on a core of its own; the server (``pipelines.asr.whisper_pool``) only writes the audio into
a pipe and reads the text back.

Wire format: the pocketsphinx worker's (``u8 kind, u32 request, u32 length`` + payload, big-endian):

- Server → worker: ``PROMPT`` (UTF-8 text: the knowledge base's vocabulary as Whisper's initial prompt, used by
  later requests), ``DECODE`` (16 kHz 16-bit mono PCM of one utterance), ``CANCEL`` (no payload: the server no
  longer wants that request's text).
- Worker → server: ``READY`` (request 0, JSON ``{"error": null | str, "window_frames"}``: the model loaded, or not;
  sent once),
  ``RESULT`` (JSON ``{"text", "decode_ms"}``), ``ERROR`` (JSON ``{"error"}``; ``"cancelled"`` for a cancelled
  request). Every DECODE gets exactly one RESULT or ERROR, so the server knows when the worker is free again.

A cancelled request is skipped if it has not started, and stopped after its encoder pass (about 100 of 170 ms
for a 4 s question) if it has: a speculative decode that the caller's speech discarded (``whisper_pool``) then
holds the worker for a fraction of a decode. A thread reads the pipe while the main thread decodes, so a CANCEL
is seen during the decode.

Run as ``python -m pipelines.asr.whisper_worker MODEL_DIR`` (the pool does). The model is read from the local
directory only; nothing is downloaded.
"""

from __future__ import annotations

import functools
import json
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from pipelines.asr.pocketsphinx_worker import read_message, write_message

__all__ = [
    "Cancelled",
    "Kind",
    "LoadedWhisper",
    "decode",
    "decode_full_window",
    "drop_repeat",
    "load_model",
    "serve",
]

SAMPLE_RATE = 16000
MAX_SECONDS = 30  # Whisper's window: longer audio is cut to its last 30 s (a caller's question is far shorter)
FULL_WINDOW_FRAMES = 3000  # 30 s of 10 ms mel frames: the encoder's largest input
# The short window (docs/measurements.md, "Whisper's short window" and "The 10 s window made the default"). Team
# development set (voices slt and espeak-ng en-us, the demo base's prompt): word error 0.091 / 0.150 with 15 s,
# 0.095 / 0.188 with 10 s, 0.073 / 0.193 with transcribe's 30 s; 3 s and 6 s windows garbled and repeated the
# sentence. Through the held-out audio path, two sessions, 10 s against 15 s: p50 lower in 7 of 8 cells, Whisper's
# wait after a weak final halved, right answers level.
WINDOW_FRAMES = 1000
TOKENS_PER_SECOND = 6  # speech is ~3 words (~4 tokens with punctuation) a second; a repeat beyond this is cut off
EXTRA_TOKENS = 10


class Kind:
    """Message kinds (``u8``)."""

    PROMPT = 1
    DECODE = 2
    CANCEL = 3
    READY = 10
    RESULT = 11
    ERROR = 12


@dataclass(frozen=True, slots=True)
class LoadedWhisper:
    """A loaded model with what :func:`decode` needs beside it.

    Attributes:
        model: faster-whisper's ``WhisperModel`` (its CTranslate2 model is ``model.model``).
        tokenizer: faster-whisper's tokenizer for English transcription.
        suppress: Token ids never generated (``transcribe``'s default: non-speech symbols and special tokens).
    """

    model: Any
    tokenizer: Any
    suppress: tuple[int, ...]


def load_model(model_dir: str, threads: int = 1) -> LoadedWhisper:
    """Whisper from a local CTranslate2 directory: CPU, int8, ``threads`` threads (the worker: one per process)."""
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # no type information shipped
    from faster_whisper.tokenizer import Tokenizer  # type: ignore[import-untyped]
    from faster_whisper.transcribe import get_suppressed_tokens  # type: ignore[import-untyped]

    model = WhisperModel(
        model_dir, device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1, local_files_only=True
    )
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language="en")
    return LoadedWhisper(model, tokenizer, tuple(get_suppressed_tokens(tokenizer, [-1])))


def _audio(pcm: bytes) -> Any:
    import numpy as np

    pcm = pcm[len(pcm) - min(len(pcm), MAX_SECONDS * SAMPLE_RATE * 2) :]
    return np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32) / 32768.0


def drop_repeat(text: str) -> str:
    """``text`` up to where it says itself again (the short window's repeat), else ``text``.

    A repeat is everything before it said again word for word (punctuation and case aside), or, at the very end,
    at least its first two words: "What is the fee? What is the fee?" and "What is the fee? What is" become "What
    is the fee?"; "Can I pay by card or can I pay by cash?" and a stutter ("How, how old ...") are kept.
    """
    words = text.split()
    plain = [re.sub(r"[^a-z0-9']", "", w.lower()) for w in words]
    for start in range(2, len(words)):
        span = min(start, len(words) - start)
        if span >= 2 and plain[start : start + span] == plain[:span]:
            return " ".join(words[:start]).rstrip(",;")
    return text


class Cancelled(Exception):
    """The request was cancelled while it was being decoded."""


def decode(
    whisper: LoadedWhisper,
    pcm: bytes,
    prompt: str | None,
    *,
    cancelled: Callable[[], bool] = lambda: False,
    window_frames: int = WINDOW_FRAMES,
) -> str:
    """The transcript of one utterance: greedy, English, prompted, on the short window (see the module's docstring).

    ``window_frames``: the encoder's window in 10 ms frames (the worker: ``WINDOW_FRAMES``; the benchmark compares).

    Raises:
        Cancelled: ``cancelled()`` was true after the encoder's pass (the decoder is not run).
    """
    import ctranslate2  # type: ignore[import-untyped]  # no type information shipped
    import numpy as np

    audio = _audio(pcm)
    features = whisper.model.feature_extractor(audio)[..., :-1]  # as transcribe computes them (last frame dropped)
    frames = min(features.shape[-1], FULL_WINDOW_FRAMES)
    window = np.zeros((features.shape[0], min(max(frames, window_frames), FULL_WINDOW_FRAMES)), dtype=np.float32)
    window[:, :frames] = features[:, :frames]  # zeros after it: transcribe's padding of the 30 s window
    encoded = whisper.model.model.encode(ctranslate2.StorageView.from_array(window[None]), to_cpu=False)
    if cancelled():
        raise Cancelled
    tokenizer = whisper.tokenizer
    tokens: list[int] = []
    if prompt:  # as transcribe passes initial_prompt: the previous text's slot
        tokens = [tokenizer.sot_prev, *tokenizer.encode(" " + prompt.strip())[: whisper.model.max_length // 2 - 1]]
    tokens += [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    budget = int(len(audio) / SAMPLE_RATE * TOKENS_PER_SECOND) + EXTRA_TOKENS
    result = whisper.model.model.generate(
        encoded,
        [tokens],
        beam_size=1,
        max_length=min(len(tokens) + budget, whisper.model.max_length),
        suppress_blank=True,
        suppress_tokens=list(whisper.suppress),
    )[0]
    return drop_repeat(str(tokenizer.decode(result.sequences_ids[0])).strip())


def decode_full_window(whisper: LoadedWhisper, pcm: bytes, prompt: str | None) -> str:
    """The transcript by faster-whisper's ``transcribe`` (the 30 s window; the benchmark's comparison)."""
    segments, _info = whisper.model.transcribe(
        _audio(pcm), language="en", beam_size=1, initial_prompt=prompt or None, vad_filter=False
    )
    return " ".join(s.text.strip() for s in segments).strip()


class _Inbox:
    """The pipe's messages, read on a thread of their own: DECODE/PROMPT in order, CANCELs as they arrive."""

    def __init__(self, stdin: IO[bytes]) -> None:
        self._stdin = stdin
        self._queue: queue.Queue[tuple[int, int, bytes] | None] = queue.Queue()
        self._lock = threading.Lock()
        self._cancelled: set[int] = set()
        threading.Thread(target=self._read, name="whisper-worker-inbox", daemon=True).start()

    def _read(self) -> None:
        while True:
            message = read_message(self._stdin)
            if message is None:
                self._queue.put(None)
                return
            if message[0] == Kind.CANCEL:
                with self._lock:
                    self._cancelled.add(message[1])
            else:
                self._queue.put(message)

    def next(self) -> tuple[int, int, bytes] | None:
        """The next DECODE or PROMPT (None at end of input)."""
        return self._queue.get()

    def cancelled(self, request: int) -> bool:
        """Whether ``request`` was cancelled."""
        with self._lock:
            return request in self._cancelled

    def forget(self, request: int) -> None:
        """Drop the cancellations of ``request`` and earlier ones (answered: requests are decoded in id order)."""
        with self._lock:
            self._cancelled = {r for r in self._cancelled if r > request}


def serve(model_dir: str, stdin: IO[bytes], stdout: IO[bytes], window_frames: int = WINDOW_FRAMES) -> None:
    """Load the model, say READY, then decode requests on a ``window_frames`` window until end of input."""
    try:
        model = load_model(model_dir)
        decode(model, bytes(SAMPLE_RATE), None)  # the first decode allocates; do it before any caller's
    except Exception as exc:  # noqa: BLE001 - reported to the server, which runs without the second opinion
        write_message(stdout, Kind.READY, 0, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    write_message(stdout, Kind.READY, 0, json.dumps({"error": None, "window_frames": window_frames}).encode())
    inbox = _Inbox(stdin)
    prompt: str | None = None
    while True:
        message = inbox.next()
        if message is None:
            return
        kind, request, payload = message
        if kind == Kind.PROMPT:
            prompt = payload.decode("utf-8") or None
            continue
        if kind != Kind.DECODE:
            continue
        t0 = time.perf_counter()
        try:
            if inbox.cancelled(request):
                raise Cancelled
            text = decode(
                model,
                payload,
                prompt,
                cancelled=functools.partial(inbox.cancelled, request),
                window_frames=window_frames,
            )
        except Cancelled:
            write_message(stdout, Kind.ERROR, request, json.dumps({"error": "cancelled"}).encode())
            continue
        except Exception as exc:  # noqa: BLE001 - this request fails; the worker goes on
            write_message(stdout, Kind.ERROR, request, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            continue
        finally:
            inbox.forget(request)
        result = {"text": text, "decode_ms": round((time.perf_counter() - t0) * 1000, 1)}
        write_message(stdout, Kind.RESULT, request, json.dumps(result).encode())


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer, int(sys.argv[2]) if len(sys.argv) > 2 else WINDOW_FRAMES)
