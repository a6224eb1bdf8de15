"""Streaming pocketsphinx in a worker process: the decoding of every call's speech, off the server's GIL.

The C decoder holds the GIL while it works (about a millisecond per 20 ms frame). On a decoder thread in the
server that millisecond is taken from the event loop that carries every call's audio, and with several callers
speaking at once the loop queues behind it. Here one worker process decodes the streams of many calls, one
message at a time, on a core of its own; the server only writes audio into a pipe and reads results back.

Wire format, both ways big-endian: ``u8 kind, u32 stream, u32 length`` + payload.

- Server → worker: ``CONFIG`` (JSON ``{"kwargs": decoder arguments}``: later streams use it), ``START``
  (``u32 interim_every_frames`` + pre-roll PCM), ``AUDIO`` (PCM), ``END``, ``ABORT``, ``CLOSE`` (the stream
  is over: its decoder goes back to the worker's pool).
- Worker → server: ``READY`` (stream 0, JSON ``{"error": null | str}``: a ``CONFIG`` was applied, or not),
  ``INTERIM`` / ``FINAL`` (JSON ``{"text", "decode_ms", "audio_bytes"}``; a final also ``"alternatives"``:
  other N-best hypotheses, and ``"confidence"``: the best one's mean word posterior), ``ERROR`` (JSON
  ``{"error"}``).

Run as ``python -m pipelines.asr.pocketsphinx_worker`` (the server does); it imports nothing of ours but this
module.
"""

from __future__ import annotations

import json
import struct
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

__all__ = ["HEADER", "Kind", "UtteranceDecoder", "read_message", "serve", "write_message"]

HEADER = struct.Struct(">BII")
# 20 ms at 16 kHz: the decoder is fed in these pieces (each call into it holds this process for ~1 ms).
PIECE_BYTES = 640
MAX_IDLE_DECODERS = 64
MAX_ALTERNATIVES = 4  # other hypotheses a final result carries
NBEST_SCAN = 30  # N-best entries read to find them (many differ only in fillers and pronunciations)


class Kind:
    """Message kinds (``u8``)."""

    CONFIG = 1
    START = 2
    AUDIO = 3
    END = 4
    ABORT = 5
    CLOSE = 6
    READY = 10
    INTERIM = 11
    FINAL = 12
    ERROR = 13


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    while size > 0:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_message(stream: IO[bytes]) -> tuple[int, int, bytes] | None:
    """The next ``(kind, stream, payload)``; None at end of input."""
    head = _read_exact(stream, HEADER.size)
    if head is None:
        return None
    kind, stream_id, length = HEADER.unpack(head)
    payload = _read_exact(stream, length) if length else b""
    if payload is None:
        return None
    return kind, stream_id, payload


def write_message(stream: IO[bytes], kind: int, stream_id: int, payload: bytes = b"") -> None:
    """Write one message (header and payload in one write) and flush it."""
    stream.write(HEADER.pack(kind, stream_id, len(payload)) + payload)
    stream.flush()


@dataclass
class UtteranceDecoder:
    """One stream's decoding, utterance by utterance; its ``results`` are ``(Kind, {"text", ...})`` to hand on.

    Used by the worker process for every stream, and by the server's decoder threads (``processes=0``).
    """

    decoder: Any
    generation: int = 0
    piece_bytes: int = PIECE_BYTES
    interim_every: int = 3
    in_utt: bool = False
    decode_s: float = 0.0
    audio_bytes: int = 0
    frames: int = 0
    last_text: str = ""
    results: list[tuple[int, dict[str, Any]]] = field(default_factory=list)

    def start(self, interim_every: int, preroll: bytes) -> None:
        """Begin an utterance (ending one still open) with the audio from before the VAD's start."""
        if self.in_utt:
            self.decoder.end_utt()
        self.decoder.start_utt()
        self.in_utt, self.decode_s, self.audio_bytes, self.frames, self.last_text = True, 0.0, 0, 0, ""
        self.interim_every = max(1, interim_every)
        self.feed(preroll)

    def feed(self, audio: bytes) -> None:
        """Decode a frame of the utterance; every ``interim_every`` frames, queue a changed interim result."""
        if not self.in_utt or not audio:
            return
        t0 = time.perf_counter()
        # Each call into the decoder holds the GIL: the pre-roll (up to 0.5 s) goes in 20 ms pieces, so that in a
        # server thread the event loop waits at most one piece's decoding (about a millisecond).
        for offset in range(0, len(audio), self.piece_bytes):
            self.decoder.process_raw(audio[offset : offset + self.piece_bytes], False, False)
        self.audio_bytes += len(audio)
        self.frames += 1
        if self.frames % self.interim_every == 0:
            hyp = self.decoder.hyp()
            text = hyp.hypstr if hyp is not None else ""
            if text and text != self.last_text:
                self.last_text = text
                self.results.append((Kind.INTERIM, self._result(text)))
        self.decode_s += time.perf_counter() - t0

    def end(self) -> None:
        """End the utterance and queue its final result."""
        if not self.in_utt:
            return
        t0 = time.perf_counter()
        self.decoder.end_utt()
        hyp = self.decoder.hyp()
        self.in_utt = False
        text = hyp.hypstr if hyp is not None else ""
        alternatives, confidence = evidence(self.decoder, text) if text else ((), None)
        self.decode_s += time.perf_counter() - t0
        result = self._result(text)
        result["alternatives"], result["confidence"] = list(alternatives), confidence
        self.results.append((Kind.FINAL, result))

    def abort(self) -> None:
        """Drop the utterance in progress, if any."""
        if self.in_utt:
            self.decoder.end_utt()
            self.in_utt = False

    def _result(self, text: str) -> dict[str, Any]:
        return {"text": text, "decode_ms": self.decode_s * 1000, "audio_bytes": self.audio_bytes}


def evidence(decoder: Any, best: str, *, alternatives: int = MAX_ALTERNATIVES) -> tuple[tuple[str, ...], float | None]:
    """What the recogniser knows beyond its best guess, at the end of an utterance (about half a millisecond).

    Returns up to ``alternatives`` other hypotheses of the N-best list (distinct texts, best first; pocketsphinx
    lists many that differ only in fillers) and the mean posterior probability of the best hypothesis' words
    (``seg().prob``, from the lattice of the best-path pass; None when it has no words).
    """
    others: list[str] = []
    try:
        for n, hyp in enumerate(decoder.nbest()):
            text = " ".join(hyp.hypstr.split())
            if text and text != best and text not in others:
                others.append(text)
            if len(others) >= alternatives or n >= NBEST_SCAN:
                break
    except Exception:  # noqa: BLE001 - no lattice (e.g. an empty utterance): only the best guess is known
        others = []
    probs: list[float] = []
    try:
        for seg in decoder.seg():
            word = str(seg.word)
            if word.startswith(("<", "[", "+")):
                continue
            probs.append(float(seg.prob))
    except Exception:  # noqa: BLE001 - as above
        probs = []
    confidence = round(sum(probs) / len(probs), 4) if probs else None
    return tuple(others), confidence


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """Decode streams until end of input."""
    import pocketsphinx  # only the worker process loads the recogniser

    kwargs: dict[str, Any] = {}
    generation = 0
    idle: list[Any] = []
    streams: dict[int, UtteranceDecoder] = {}
    while True:
        message = read_message(stdin)
        if message is None:
            return
        kind, stream_id, payload = message
        if kind == Kind.CONFIG:
            try:
                candidate = dict(json.loads(payload)["kwargs"])
                decoder = pocketsphinx.Decoder(**candidate)  # loads the model now: a bad one fails here
            except Exception as exc:  # noqa: BLE001 - reported to the server, which keeps the previous model
                write_message(stdout, Kind.READY, 0, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
                continue
            kwargs, generation, idle = candidate, generation + 1, [decoder]
            write_message(stdout, Kind.READY, 0, json.dumps({"error": None}).encode())
            continue
        stream = streams.get(stream_id)
        try:
            if kind == Kind.START:
                if stream is None:
                    decoder = idle.pop() if idle else pocketsphinx.Decoder(**kwargs)
                    stream = streams[stream_id] = UtteranceDecoder(decoder=decoder, generation=generation)
                (interim_every,) = struct.unpack(">I", payload[:4])
                stream.start(interim_every, payload[4:])
            elif stream is None:
                continue  # audio or an end after the stream failed or closed: nothing to decode
            elif kind == Kind.AUDIO:
                stream.feed(payload)
            elif kind == Kind.END:
                stream.end()
            elif kind == Kind.ABORT:
                stream.abort()
            elif kind == Kind.CLOSE:
                del streams[stream_id]
                stream.abort()
                if stream.generation == generation and len(idle) < MAX_IDLE_DECODERS:
                    idle.append(stream.decoder)
        except Exception as exc:  # noqa: BLE001 - one stream's failure is reported to it; others go on
            streams.pop(stream_id, None)
            write_message(stdout, Kind.ERROR, stream_id, json.dumps({"error": f"{type(exc).__name__}: {exc}"}).encode())
            continue
        if stream is not None and stream.results:
            for result_kind, result in stream.results:
                write_message(stdout, result_kind, stream_id, json.dumps(result).encode())
            stream.results.clear()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
