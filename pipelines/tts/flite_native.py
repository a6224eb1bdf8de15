"""Resident flite: the flite library loaded once in a few worker processes, fed text over a pipe.

Running the ``flite`` command per clause costs the server a fork of its whole address space on the event loop
(14 ms per clause under four calls, during which no call's audio moves) and flite a fresh start with its voice
loaded each time. Here each worker process loads ``libflite`` and the voices once (``ctypes``, no compiler
needed) and synthesises one request at a time; the server keeps a small pool of them (:class:`FliteWorkerPool`)
and hands each clause to the least busy. A worker that dies fails its pending requests and is replaced.

Wire format, both ways big-endian length-prefixed: a request is ``u32 len`` + JSON ``{"id", "text", "voice",
"stretch", "stream"}``; a reply is ``u32 header_len, u32 pcm_len`` + JSON ``{"id", "rate", "error", "more"}`` +
16-bit mono PCM. Reply id 0 is the worker's ready message (``{"voices": [...]}``). A ``stream`` request is answered
in pieces as flite's vocoder writes them (flite's audio streaming callback): replies with ``"more": true``, then
one without it holding the rest; together the same samples a whole reply holds. The first piece of a 9-word clause
comes after about a third of its synthesis time (slt: 12 of 41 ms), so the caller's first audio need not wait for
the whole clause.

Run as ``python -m pipelines.tts.flite_native slt rms`` (the pool does); it imports nothing but the standard
library.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import heapq
import itertools
import json
import struct
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import IO, Any

from pipelines.worker_process import ModuleWorker

__all__ = ["NATIVE_VOICES", "FliteLibrary", "FliteWorkerPool"]

# flite voice name → (shared library, registration function), as Debian's libflite1 ships them.
NATIVE_VOICES: dict[str, tuple[str, str]] = {
    "slt": ("libflite_cmu_us_slt.so.1", "register_cmu_us_slt"),
    "rms": ("libflite_cmu_us_rms.so.1", "register_cmu_us_rms"),
    "awb": ("libflite_cmu_us_awb.so.1", "register_cmu_us_awb"),
    "kal": ("libflite_cmu_us_kal.so.1", "register_cmu_us_kal"),
    "kal16": ("libflite_cmu_us_kal16.so.1", "register_cmu_us_kal16"),
    "awb_time": ("libflite_cmu_time_awb.so.1", "register_cmu_time_awb"),
}
_SUPPORT_LIBS = ("libflite_usenglish.so.1", "libflite_cmulex.so.1")
_REQUEST = struct.Struct(">I")
_REPLY = struct.Struct(">II")
MAX_TEXT_CHARS = 4000


class _Wave(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class _StreamInfo(ctypes.Structure):
    pass


# flite's ``cst_audio_stream_callback``: (wave being written, first new sample, samples, last, streaming info).
_STREAM_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(_Wave), ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.POINTER(_StreamInfo)
)
# The head of flite 2's ``cst_audio_streaming_info`` (then the utterance, the item and user data, unused here).
_StreamInfo._fields_ = [("min_buffsize", ctypes.c_int), ("asc", _STREAM_CALLBACK)]
STREAM_CHUNK_SECS = 0.05  # how much audio flite gathers before each streamed piece


class _Voice(ctypes.Structure):
    # The head of flite's ``cst_voice``: its name, then its feature set.
    _fields_ = [("name", ctypes.c_char_p), ("features", ctypes.c_void_p)]


class FliteLibrary:
    """``libflite`` and some of its voices, loaded in this process (not thread-safe: one synthesis at a time).

    Args:
        voices: Voice names (keys of :data:`NATIVE_VOICES`).

    Raises:
        OSError: A library is missing.
        KeyError: A voice has no known library.
    """

    def __init__(self, voices: Iterable[str]) -> None:
        mode = ctypes.RTLD_GLOBAL
        self._lib = ctypes.CDLL("libflite.so.1", mode=mode)
        for name in _SUPPORT_LIBS:
            ctypes.CDLL(name, mode=mode)
        self._lib.flite_init()
        self._lib.flite_text_to_wave.restype = ctypes.POINTER(_Wave)
        self._lib.flite_text_to_wave.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
        self._lib.delete_wave.argtypes = [ctypes.POINTER(_Wave)]
        self._lib.flite_feat_set_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_float]
        self._lib.new_audio_streaming_info.restype = ctypes.POINTER(_StreamInfo)
        self._lib.audio_streaming_info_val.restype = ctypes.c_void_p
        self._lib.audio_streaming_info_val.argtypes = [ctypes.POINTER(_StreamInfo)]
        self._lib.feat_set.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
        self._libc = ctypes.CDLL("libc.so.6")
        # One streaming callback for every voice; it hands pieces on only while a streamed synthesis runs.
        self._callback = _STREAM_CALLBACK(self._piece)
        self._sink: Callable[[bytes, int], None] | None = None
        self._streamed = 0
        self._voices: dict[str, int] = {}
        for voice in voices:
            library, register = NATIVE_VOICES[voice]
            function = getattr(ctypes.CDLL(library, mode=mode), register)
            function.restype = ctypes.c_void_p
            function.argtypes = [ctypes.c_char_p]
            pointer = function(None)
            if not pointer:
                raise OSError(f"flite could not register voice {voice!r}")
            self._voices[voice] = pointer
            info = self._lib.new_audio_streaming_info()
            info.contents.asc = self._callback
            info.contents.min_buffsize = int(16000 * STREAM_CHUNK_SECS)
            features = _Voice.from_address(pointer).features
            self._lib.feat_set(features, b"streaming_info", self._lib.audio_streaming_info_val(info))

    def _piece(self, wave: Any, start: int, size: int, last: int, info: Any) -> int:
        """The streaming callback flite calls: the samples ``start`` to ``start + size`` of the wave are written."""
        if self._sink is not None and size > 0:
            data = wave.contents
            piece = ctypes.string_at(ctypes.addressof(data.samples.contents) + 2 * start, 2 * size)
            self._sink(piece, int(data.sample_rate))
            self._streamed = start + size
        return 0  # CST_AUDIO_STREAM_CONT

    @property
    def voices(self) -> list[str]:
        """The loaded voices."""
        return sorted(self._voices)

    def synthesise(
        self, text: str, *, voice: str, stretch: float = 1.0, pieces: Callable[[bytes, int], None] | None = None
    ) -> tuple[bytes, int]:
        """16-bit mono PCM of ``text`` and its sample rate (``stretch`` > 1 speaks slower).

        With ``pieces``, each piece of audio flite's vocoder writes goes to it (PCM, rate) as it is written; the PCM
        returned is what was not handed on (the voices without a streaming vocoder hand on nothing).
        """
        pointer = self._voices[voice]
        features = _Voice.from_address(pointer).features
        self._lib.flite_feat_set_float(features, b"duration_stretch", ctypes.c_float(stretch))
        # flite's voices draw excitation noise from the C library's rand(): seeded as in a fresh ``flite``
        # process, every clause is the exact audio the command writes (and the same clause sounds the same).
        self._libc.srand(1)
        self._sink, self._streamed = pieces, 0
        try:
            wave = self._lib.flite_text_to_wave(text.encode("utf-8", errors="replace"), pointer)
        finally:
            self._sink = None
        if not wave:
            raise RuntimeError("flite returned no audio")
        try:
            data = wave.contents
            pcm = ctypes.string_at(data.samples, data.num_samples * data.num_channels * 2)
            return pcm[2 * self._streamed :] if pieces is not None else pcm, int(data.sample_rate)
        finally:
            self._lib.delete_wave(wave)


def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _reply(out: IO[bytes], header: dict[str, Any], pcm: bytes = b"") -> None:
    encoded = json.dumps(header).encode()
    out.write(_REPLY.pack(len(encoded), len(pcm)) + encoded + pcm)
    out.flush()


def _more(out: IO[bytes], request_id: Any, piece: bytes, rate: int) -> None:
    _reply(out, {"id": request_id, "rate": rate, "more": True}, piece)


def serve(voices: Sequence[str], stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker: load the voices, say so, then answer requests until stdin closes."""
    try:
        library = FliteLibrary(voices)
    except (OSError, KeyError, AttributeError) as exc:
        _reply(stdout, {"id": 0, "error": f"{type(exc).__name__}: {exc}"})
        return
    _reply(stdout, {"id": 0, "voices": library.voices})
    while True:
        head = _read_exact(stdin, _REQUEST.size)
        if head is None:
            return
        body = _read_exact(stdin, _REQUEST.unpack(head)[0])
        if body is None:
            return
        request = json.loads(body)
        streamed = functools.partial(_more, stdout, request.get("id")) if request.get("stream") else None
        try:
            pcm, rate = library.synthesise(
                str(request["text"])[:MAX_TEXT_CHARS],
                voice=request["voice"],
                stretch=float(request["stretch"]),
                pieces=streamed,
            )
        except (KeyError, RuntimeError, ValueError) as exc:
            _reply(stdout, {"id": request.get("id"), "error": f"{type(exc).__name__}: {exc}"})
            continue
        _reply(stdout, {"id": request["id"], "rate": rate}, pcm)


class _Worker:
    """One worker process and the requests it owes answers to (answers are read on a thread)."""

    def __init__(self, voices: Sequence[str], *, start_timeout: float) -> None:
        self._child = ModuleWorker("pipelines.tts.flite_native", *voices)
        self.process = self._child.process
        self._stdin = self._child.stdin
        self._stdout = self._child.stdout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        # Each request's loop and where its replies go: a future (whole) or a queue of pieces (streamed).
        self._pending: dict[int, tuple[asyncio.AbstractEventLoop, _Answer]] = {}
        self.alive = True
        ready = self._read_reply(start_timeout)
        if ready is None or ready[0].get("error") or ready[0].get("id") != 0:
            self.close()
            reason = ready[0].get("error") if ready else "no answer"
            raise OSError(f"flite worker did not start: {reason}")
        self.voices = frozenset(ready[0].get("voices", ()))
        self._reader = threading.Thread(target=self._read_loop, name="flite-worker", daemon=True)
        self._reader.start()

    @property
    def pending(self) -> int:
        """Requests sent and not yet answered."""
        return len(self._pending)

    def _read_reply(self, timeout: float | None = None) -> tuple[dict[str, Any], bytes] | None:
        if timeout is not None:
            timer = threading.Timer(timeout, self.process.kill)
            timer.start()
        try:
            head = _read_exact(self._stdout, _REPLY.size)
            if head is None:
                return None
            header_len, pcm_len = _REPLY.unpack(head)
            header = _read_exact(self._stdout, header_len)
            pcm = _read_exact(self._stdout, pcm_len)
        finally:
            if timeout is not None:
                timer.cancel()
        if header is None or pcm is None:
            return None
        return json.loads(header), pcm

    def _read_loop(self) -> None:
        while True:
            reply = self._read_reply()
            if reply is None:
                break
            header, pcm = reply
            request_id, more = int(header.get("id") or 0), bool(header.get("more"))
            with self._lock:
                entry = self._pending.get(request_id) if more else self._pending.pop(request_id, None)
            if entry is None:
                continue
            loop, answer = entry
            error = header.get("error")
            outcome: BaseException | tuple[bytes, int] = (
                RuntimeError(f"flite: {error}") if error else (pcm, int(header["rate"]))
            )
            loop.call_soon_threadsafe(_settle, answer, outcome, not more)
        self.alive = False
        with self._lock:
            orphans, self._pending = list(self._pending.values()), {}
        for loop, answer in orphans:
            loop.call_soon_threadsafe(_settle, answer, RuntimeError("the flite worker exited"), True)

    def _send(self, answer: _Answer, **request: Any) -> int:
        """Send one request whose replies go to ``answer``; its id."""
        with self._lock:
            request_id = next(self._ids)
            self._pending[request_id] = (asyncio.get_running_loop(), answer)
        body = json.dumps({"id": request_id, **request}).encode()
        try:
            # A few hundred bytes into an OS pipe the worker drains: this write does not block.
            self._stdin.write(_REQUEST.pack(len(body)) + body)
            self._stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            with self._lock:
                self._pending.pop(request_id, None)
            self.alive = False
            raise RuntimeError("the flite worker exited") from None
        return request_id

    async def synthesise(self, text: str, *, voice: str, stretch: float) -> tuple[bytes, int]:
        future: asyncio.Future[tuple[bytes, int]] = asyncio.get_running_loop().create_future()
        request_id = self._send(future, text=text, voice=voice, stretch=stretch)
        try:
            return await future
        finally:
            with self._lock:
                self._pending.pop(request_id, None)

    async def stream(self, text: str, *, voice: str, stretch: float) -> AsyncGenerator[tuple[bytes, int], None]:
        pieces: asyncio.Queue[tuple[BaseException | tuple[bytes, int], bool]] = asyncio.Queue()
        request_id = self._send(pieces, text=text, voice=voice, stretch=stretch, stream=True)
        try:
            while True:
                outcome, last = await pieces.get()
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome[0]:
                    yield outcome
                if last:
                    return
        finally:
            with self._lock:
                self._pending.pop(request_id, None)

    def close(self) -> None:
        self.alive = False
        self._child.stop(timeout=2)


# Where a request's replies go: a future for the whole audio, or a queue of (piece or error, last) for a stream.
_Answer = asyncio.Future[tuple[bytes, int]] | asyncio.Queue[tuple[BaseException | tuple[bytes, int], bool]]


def _settle(answer: _Answer, outcome: BaseException | tuple[bytes, int], last: bool) -> None:
    if isinstance(answer, asyncio.Queue):
        answer.put_nowait((outcome, last))
        return
    if answer.done():
        return
    if isinstance(outcome, BaseException):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)


class FliteWorkerPool:
    """A few resident flite worker processes, one clause at a time each, the urgent clauses first.

    A clause waits for a free worker. The first clause of an answer is urgent: the caller hears nothing until
    it is rendered. A later clause has until the audio before it has played. With many calls answering at once
    the urgent ones go first, instead of queueing behind the rest of other calls' answers.

    Args:
        voices: Voices every worker loads.
        size: Worker processes (one synthesis at a time each).
        start_timeout: Seconds a worker may take to load its voices.

    Raises:
        OSError: The first worker could not load flite (the caller falls back to the ``flite`` command).
    """

    def __init__(self, voices: Sequence[str], *, size: int, start_timeout: float = 20.0) -> None:
        self._voice_names = tuple(voices)
        self._start_timeout = start_timeout
        self._workers = [_Worker(self._voice_names, start_timeout=start_timeout) for _ in range(max(1, size))]
        self.voices = self._workers[0].voices
        self._replacing: asyncio.Lock | None = None
        self._repairs: set[asyncio.Task[_Worker]] = set()
        self._free = len(self._workers)
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    @property
    def size(self) -> int:
        """Worker processes."""
        return len(self._workers)

    async def synthesise(
        self, text: str, *, voice: str, stretch: float = 1.0, urgent: bool = False
    ) -> tuple[bytes, int]:
        """PCM of ``text`` (16-bit mono) and its sample rate, from a free worker (``urgent`` ones served first)."""
        await self._acquire(urgent)
        try:
            worker = await self._worker()
            return await worker.synthesise(text, voice=voice, stretch=stretch)
        finally:
            self._release()

    async def stream(
        self, text: str, *, voice: str, stretch: float = 1.0, urgent: bool = False
    ) -> AsyncGenerator[tuple[bytes, int], None]:
        """The same audio as :meth:`synthesise`, in pieces (PCM, rate) as flite writes them.

        The worker is held until the last piece (or until the caller stops reading: close the iterator).
        """
        await self._acquire(urgent)
        try:
            worker = await self._worker()
            async for piece in worker.stream(text, voice=voice, stretch=stretch):
                yield piece
        finally:
            self._release()

    async def _worker(self) -> _Worker:
        """The live worker with the fewest requests; dead ones are replaced."""
        worker = min(self._workers, key=lambda w: (not w.alive, w.pending))
        if not worker.alive:
            return await self._replace(worker)
        if not self._repairs:
            for dead in [w for w in self._workers if not w.alive]:
                task = asyncio.create_task(self._replace(dead), name="flite-worker-replace")
                self._repairs.add(task)
                task.add_done_callback(self._repairs.discard)
        return worker

    async def _acquire(self, urgent: bool) -> None:
        if self._free > 0 and not self._waiting:
            self._free -= 1
            return
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (0 if urgent else 1, next(self._order), turn))
        try:
            await turn
        except asyncio.CancelledError:
            if turn.done() and not turn.cancelled():
                self._release()  # the worker was handed over as this request was cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiting:
            _, _, turn = heapq.heappop(self._waiting)
            if not turn.done():
                turn.set_result(None)  # the worker goes straight to the next request
                return
        self._free += 1

    async def _replace(self, dead: _Worker) -> _Worker:
        if self._replacing is None:
            self._replacing = asyncio.Lock()
        async with self._replacing:
            if dead in self._workers and not dead.alive:
                fresh = await asyncio.to_thread(_Worker, self._voice_names, start_timeout=self._start_timeout)
                self._workers[self._workers.index(dead)] = fresh
                await asyncio.to_thread(dead.close)
                return fresh
        return min(self._workers, key=lambda w: (not w.alive, w.pending))

    def close(self) -> None:
        """Stop every worker."""
        for worker in self._workers:
            worker.close()


if __name__ == "__main__":
    serve(sys.argv[1:], sys.stdin.buffer, sys.stdout.buffer)
