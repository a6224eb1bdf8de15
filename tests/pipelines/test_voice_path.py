"""The whole offline voice path on real models: flite speech in, pocketsphinx, extractive brain, flite out."""

from __future__ import annotations

import asyncio

import pytest
from pipecat.frames.frames import EndFrame
from pipecat.workers.runner import WorkerRunner

from benchmarks.asr_eval.demo_kb import DemoRetriever, MiniLMEmbedder
from pipelines.asr.domain_lm import DomainLM
from pipelines.build import Stages, build_pipeline, build_stages
from pipelines.contracts import PersonaSpec
from pipelines.options import ASROptions
from pipelines.transports.memory import MemoryTransport
from tests.pipelines.conftest import RecordingSink, flite_pcm

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def stages(domain_lm: DomainLM, embedder: MiniLMEmbedder) -> Stages:
    return build_stages(asr=ASROptions(lm_path=domain_lm.lm_path, dict_path=domain_lm.dict_path), embedder=embedder)


async def test_spoken_question_is_answered_from_the_right_passage(
    stages: Stages, demo_retriever: DemoRetriever, sink: RecordingSink
) -> None:
    transport = MemoryTransport()
    call = build_pipeline(
        transport=transport,
        stages=stages,
        retriever=demo_retriever,
        sink=sink,
        persona=PersonaSpec(),
        call_id="test-call",
        greet=False,
    )
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(call.worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.5)
        clip = transport.say(flite_pcm("How long is the password reset link valid?"))
        await clip.done.wait()
        for _ in range(100):
            await asyncio.sleep(0.1)
            if any(m.get("role") == "assistant" for m in call.context.get_messages() if isinstance(m, dict)):
                break
    finally:
        await call.worker.queue_frame(EndFrame())
        await asyncio.wait_for(run, 15)

    messages = [m for m in call.context.get_messages() if isinstance(m, dict)]
    user = [str(m["content"]) for m in messages if m.get("role") == "user"]
    assistant = [str(m["content"]) for m in messages if m.get("role") == "assistant"]
    assert user and "password" in user[0]
    assert assistant and "30 minutes" in assistant[0]
    results = [e for e in sink.events if e.kind == "tool_result"]
    assert results and results[0].data["citations"][0].startswith("account-and-security.md#Resetting your password")
    assert clip.last_voiced_at is not None
    assert transport.first_voiced_output_after(clip.last_voiced_at) is not None
