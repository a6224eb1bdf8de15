"""Run spoken questions through the real pipeline in-process (memory transport) and collect what happened."""

from __future__ import annotations

import asyncio
import contextlib
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecat.frames.frames import CancelFrame, LLMTextFrame
from pipecat.observers.base_observer import BaseObserver, FramePushed
from pipecat.workers.runner import WorkerRunner

from pipelines.build import CallPipeline, Stages, build_pipeline
from pipelines.contracts import (
    CallEventRecord,
    CallSink,
    LatencyRecord,
    PersonaSpec,
    Retriever,
    TurnRecord,
)
from pipelines.transports.memory import MemoryTransport


def memory_call(
    transport: MemoryTransport, stages: Stages, retriever: Retriever, sink: CallSink, call_id: str, **extra: Any
) -> CallPipeline:
    """One in-process call on ``transport``: the default persona, no greeting (``extra``: more ``build_pipeline``
    arguments). The benchmarks and the voice-path tests all build their calls here."""
    return build_pipeline(
        transport=transport,
        stages=stages,
        retriever=retriever,
        sink=sink,
        persona=PersonaSpec(),
        call_id=call_id,
        greet=False,
        **extra,
    )


@dataclass
class MemorySink:
    """An in-memory ``CallSink``."""

    turns: list[TurnRecord] = field(default_factory=list)
    latencies: list[LatencyRecord] = field(default_factory=list)
    events: list[CallEventRecord] = field(default_factory=list)
    answered: asyncio.Event = field(default_factory=asyncio.Event)

    async def turn(self, record: TurnRecord) -> None:
        self.turns.append(record)

    async def latency(self, record: LatencyRecord) -> None:
        self.latencies.append(record)
        self.answered.set()

    async def event(self, record: CallEventRecord) -> None:
        self.events.append(record)

    async def recording(self, *, path: str, fmt: str, channels: int, sample_rate: int, duration_ms: int) -> None:
        return None


class AnswerCatcher(BaseObserver):
    """Keeps the text the brain sends to the synthesiser."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []

    async def on_push_frame(self, data: FramePushed) -> None:
        if data.first_push and isinstance(data.frame, LLMTextFrame):
            self.texts.append(data.frame.text)


def read_pcm(path: Path) -> bytes:
    """The PCM of a 16 kHz mono WAV."""
    with wave.open(str(path)) as w:
        return bytes(w.readframes(w.getnframes()))


@dataclass
class Answered:
    """One spoken question through the pipeline."""

    transcript: str
    answer: str
    citations: list[str]
    latency: LatencyRecord | None
    heard_agent: bool


async def ask(
    stages: Stages,
    retriever: Retriever,
    pcm: bytes,
    *,
    call_id: str,
    wait_s: float = 10.0,
    open_call: Callable[[str], Awaitable[None]] | None = None,
) -> Answered:
    """Play ``pcm`` into a fresh call, wait for the agent's first audio, and end the call.

    ``open_call`` runs before the call starts (e.g. ``CallsOnRecord.open_call``: the server records a call
    before its pipeline runs).
    """
    if open_call is not None:
        await open_call(call_id)
    transport = MemoryTransport()
    sink = MemorySink()
    catcher = AnswerCatcher()
    call = memory_call(transport, stages, retriever, sink, call_id, observers=[catcher])
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(call.worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.3)
        clip = transport.say(pcm)
        await clip.done.wait()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(sink.answered.wait(), wait_s)
        await asyncio.sleep(0.1)
    finally:
        await call.worker.queue_frame(CancelFrame())
        await asyncio.wait_for(run, 15)
    caller = [t.text for t in sink.turns if t.role == "caller"]
    citations = [c for e in sink.events if e.kind == "tool_result" for c in e.data.get("citations", [])[:1]]
    return Answered(
        transcript=caller[0] if caller else "",
        answer=" ".join(catcher.texts),
        citations=citations,
        latency=sink.latencies[0] if sink.latencies else None,
        heard_agent=bool(transport.heard),
    )
