"""Whisper in a worker process: the second opinion on a caller's final utterance, off the server's cores' GIL.

Whisper (tiny.en, CTranslate2, int8, one thread, greedy) encodes a 30 s window whatever the utterance's length:
about 0.3-0.4 s of a core per utterance. In the server that time would be taken from the event loop carrying
every call's audio (CTranslate2 releases the GIL, but the feature extraction is numpy on the calling thread), so
each worker process decodes one utterance at a time on a core of its own; the server
(``pipelines.asr.whisper_pool``) only writes the audio into a pipe and reads the text back.

Wire format: the pocketsphinx worker's (``u8 kind, u32 request, u32 length`` + payload, big-endian):

- Server → worker: ``PROMPT`` (UTF-8 text: the knowledge base's vocabulary as Whisper's initial prompt, used by
  later requests), ``DECODE`` (16 kHz 16-bit mono PCM of one utterance).
- Worker → server: ``READY`` (request 0, JSON ``{"error": null | str}``: the model loaded, or not; sent once),
  ``RESULT`` (JSON ``{"text", "decode_ms"}``), ``ERROR`` (JSON ``{"error"}``).

Run as ``python -m pipelines.asr.whisper_worker MODEL_DIR`` (the pool does). The model is read from the local
directory only; nothing is downloaded.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

from pipelines.asr.pocketsphinx_worker import read_message, write_message

__all__ = ["Kind", "decode", "load_model", "serve"]

SAMPLE_RATE = 16000
MAX_SECONDS = 30  # Whisper's window: longer audio is cut to its last 30 s (a caller's question is far shorter)


class Kind:
    """Message kinds (``u8``)."""

    PROMPT = 1
    DECODE = 2
    READY = 10
    RESULT = 11
    ERROR = 12


def load_model(model_dir: str) -> Any:
    """Whisper from a local CTranslate2 directory: CPU, int8, one thread (one utterance at a time per process)."""
    from faster_whisper import WhisperModel  # type: ignore[import-untyped]  # no type information shipped

    return WhisperModel(
        model_dir, device="cpu", compute_type="int8", cpu_threads=1, num_workers=1, local_files_only=True
    )


def decode(model: Any, pcm: bytes, prompt: str | None) -> str:
    """The transcript of one utterance (greedy, English, prompted; as ``benchmarks/recognition.py`` measured it)."""
    import numpy as np

    pcm = pcm[len(pcm) - min(len(pcm), MAX_SECONDS * SAMPLE_RATE * 2) :]
    audio = np.frombuffer(pcm[: len(pcm) - len(pcm) % 2], dtype="<i2").astype(np.float32) / 32768.0
    segments, _info = model.transcribe(
        audio, language="en", beam_size=1, initial_prompt=prompt or None, vad_filter=False
    )
    return " ".join(s.text.strip() for s in segments).strip()


def serve(model_dir: str, stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Load the model, say READY, then decode requests until end of input."""
    try:
        model = load_model(model_dir)
        decode(model, bytes(SAMPLE_RATE), None)  # the first decode allocates; do it before any caller's
    except Exception as exc:  # noqa: BLE001 - reported to the server, which runs without the second opinion
        write_message(stdout, Kind.READY, 0, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
        return
    write_message(stdout, Kind.READY, 0, json.dumps({"error": None}).encode())
    prompt: str | None = None
    while True:
        message = read_message(stdin)
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
            text = decode(model, payload, prompt)
        except Exception as exc:  # noqa: BLE001 - this request fails; the worker goes on
            write_message(stdout, Kind.ERROR, request, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            continue
        result = {"text": text, "decode_ms": round((time.perf_counter() - t0) * 1000, 1)}
        write_message(stdout, Kind.RESULT, request, json.dumps(result).encode())


if __name__ == "__main__":
    serve(sys.argv[1], sys.stdin.buffer, sys.stdout.buffer)
