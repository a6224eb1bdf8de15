"""In-process voice-to-voice latency and barge-in reaction of the offline stack (no WebRTC).

Real models and real time: flite-rendered questions are played into the memory transport at real time,
through Silero VAD, streaming pocketsphinx with the demo KB's domain LM, RAG (the shipped knowledge service over
the ingested demo KB, through the server's retriever: ``benchmarks.product_kb``), the extractive brain and flite,
and the agent's audio is "played" at real time.

- latency: per turn, the caller's last voiced frame → the agent's first audio frame out, as the pipeline's own
  latency meter records it (with its split), and as the transport sees it (last voiced input frame → first
  voiced output frame);
- barge-in: the caller starts talking while the agent answers; speech onset (first voiced input frame) →
  ``InterruptionFrame`` (meter) and → the agent's last audio frame written (transport).

Run: ``.venv/bin/python benchmarks/pipeline_latency.py [--questions 20] [--barge-ins 8] [--concurrency 1]``.
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from loguru import logger  # noqa: E402
from pipecat.frames.frames import CancelFrame  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from benchmarks.asr_eval.harness import MemorySink, memory_call, read_pcm  # noqa: E402
from benchmarks.asr_eval.render import OUT, questions, render, render_all  # noqa: E402
from benchmarks.product_kb import CallsOnRecord, DemoKnowledge, open_demo_knowledge  # noqa: E402
from control_api.logging_setup import configure_logging  # noqa: E402
from pipelines.asr.domain_lm import build_domain_lm  # noqa: E402
from pipelines.build import Stages, build_stages  # noqa: E402
from pipelines.options import ASROptions  # noqa: E402
from pipelines.transports.memory import MemoryTransport  # noqa: E402

LONG_QUESTION = "Do I have to return the router when I leave?"
BARGE_IN = "Wait, what about the mesh extenders?"


def pct(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank) of ``values``, rounded to 0.1 ms."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))], 1)


def summary(values: list[float]) -> dict[str, float | None]:
    """p50/p95/max of ``values``."""
    return {"p50": pct(values, 0.5), "p95": pct(values, 0.95), "max": pct(values, 1.0), "n": len(values)}


async def one_turn(stages: Stages, retriever: CallsOnRecord, pcm: bytes, call_id: str) -> dict[str, Any]:
    """One call, one question; the latency as metered and as seen by the transport."""
    await retriever.open_call(call_id)
    transport, sink = MemoryTransport(), MemorySink()
    call = memory_call(transport, stages, retriever, sink, call_id)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(call.worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.3)
        clip = transport.say(pcm)
        await clip.done.wait()
        try:
            await asyncio.wait_for(sink.answered.wait(), 10)
        except TimeoutError:
            return {"answered": False}
        await asyncio.sleep(0.2)
    finally:
        await call.worker.queue_frame(CancelFrame())
        await asyncio.wait_for(run, 15)
    record = sink.latencies[0]
    first_out = transport.first_voiced_output_after(clip.last_voiced_at or 0.0)
    return {
        "answered": True,
        "metered": record,
        "transport_ms": (first_out - clip.last_voiced_at) * 1000 if first_out and clip.last_voiced_at else None,
    }


async def one_barge_in(
    stages: Stages, retriever: CallsOnRecord, ask: bytes, cut: bytes, call_id: str
) -> dict[str, Any]:
    """One call: a long answer, cut in 2.5 s after it starts."""
    await retriever.open_call(call_id)
    transport, sink = MemoryTransport(), MemorySink()
    call = memory_call(transport, stages, retriever, sink, call_id)
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(call.worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.3)
        clip = transport.say(ask)
        await clip.done.wait()
        await asyncio.wait_for(sink.answered.wait(), 10)
        await asyncio.sleep(2.5)
        barge = transport.say(cut)
        await barge.done.wait()
        await asyncio.sleep(1.0)
    finally:
        await call.worker.queue_frame(CancelFrame())
        await asyncio.wait_for(run, 15)
    onset = barge.first_voiced_at
    if onset is None or not call.latency.barge_ins_ms:
        return {"interrupted": False}
    # The agent's audio stops: the last agent frame written before its silence gap after the onset.
    after = [t for t, a in transport.heard if t >= onset]
    stopped = after[0] if after else onset
    for prev, nxt in itertools.pairwise(after):
        if nxt - prev > 0.15:
            break
        stopped = nxt
    return {
        "interrupted": True,
        "interruption_ms": call.latency.barge_ins_ms[0],
        "audio_stop_ms": (stopped - onset) * 1000,
    }


async def main() -> None:
    """Run both scenarios and print JSON."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=20)
    parser.add_argument("--barge-ins", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=1, help="calls in flight at once")
    parser.add_argument("--voice", default="slt")
    args = parser.parse_args()
    configure_logging(level="WARNING")  # on stderr: stdout carries the report
    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    with tempfile.TemporaryDirectory(prefix="pipeline-latency-") as tmp:
        async with open_demo_knowledge(Path(tmp) / "data") as kb:
            await measure(kb, args)


async def measure(kb: DemoKnowledge, args: argparse.Namespace) -> None:
    """Run both scenarios on ``kb`` and print JSON."""
    files = render_all((args.voice,))[args.voice]
    lm = build_domain_lm(await kb.corpus(), OUT / "models")
    retriever = kb.retriever
    stages = build_stages(asr=ASROptions(lm_path=lm.lm_path, dict_path=lm.dict_path), embedder=kb.embedder)
    await stages.warm()
    sem = asyncio.Semaphore(args.concurrency)

    async def limited(coro: Any) -> Any:
        async with sem:
            return await coro

    qs = questions()[: args.questions]
    t0 = time.perf_counter()
    turns = await asyncio.gather(
        *(limited(one_turn(stages, retriever, read_pcm(files[q["id"]]), f"lat-{q['id']}")) for q in qs)
    )
    answered = [t for t in turns if t["answered"]]
    split: dict[str, list[float]] = {k: [] for k in ("total", "vad", "asr", "retrieval", "llm", "tts")}
    for t in answered:
        for k in split:
            value = getattr(t["metered"], f"{k}_ms")
            if value is not None:
                split[k].append(value)

    ask = read_pcm(render(args.voice, LONG_QUESTION, OUT / args.voice / "bench-long.wav"))
    cut = read_pcm(render(args.voice, BARGE_IN, OUT / args.voice / "bench-barge.wav"))
    barges = await asyncio.gather(
        *(limited(one_barge_in(stages, retriever, ask, cut, f"barge-{i}")) for i in range(args.barge_ins))
    )
    done = [b for b in barges if b["interrupted"]]
    print(
        json.dumps(
            {
                "stack": "memory transport (real time) → Silero VAD → streaming pocketsphinx + domain LM → RAG "
                "(knowledge service over the ingested demo KB) → extractive brain → flite slt",
                "voice": args.voice,
                "concurrency": args.concurrency,
                "turns": len(turns),
                "answered": len(answered),
                "voice_to_voice_ms": {k: summary(v) for k, v in split.items()},
                "voice_to_voice_transport_ms": summary([t["transport_ms"] for t in answered if t["transport_ms"]]),
                "barge_in": {
                    "attempts": len(barges),
                    "interrupted": len(done),
                    "onset_to_interruption_ms": summary([b["interruption_ms"] for b in done]),
                    "onset_to_audio_stop_ms": summary([b["audio_stop_ms"] for b in done]),
                },
                "targets_ms": {"p50": 500, "p95": 800, "barge_in_p95": 300},
                "wall_s": round(time.perf_counter() - t0, 1),
            },
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
