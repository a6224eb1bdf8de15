"""Hosted-vendor backends against local fakes that check each request against the vendor's documented contract.

OpenAI-compatible transcription (``POST /v1/audio/transcriptions``, multipart), chat completions with streamed
tokens and function calling (``POST /v1/chat/completions``, SSE), speech (``POST /v1/audio/speech``, raw 24 kHz
PCM), Ollama (its OpenAI-compatible ``/v1`` API) and OpenAI Realtime (WebSocket ``session.update`` /
``input_audio_buffer.append``). faster-whisper and Piper run against real model files when configured.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import time
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import BodyPartReader, web
from pipecat.frames.frames import EndFrame
from pipecat.workers.runner import WorkerRunner

from benchmarks.asr_eval.harness import memory_call
from benchmarks.product_kb import CallsOnRecord
from knowledge.embedders.base import Embedder
from pipelines.asr.domain_lm import DomainLM
from pipelines.build import CallPipeline, build_pipeline, build_stages
from pipelines.contracts import PersonaSpec
from pipelines.options import ASROptions, BrainOptions, TTSOptions
from pipelines.transports.memory import MemoryTransport
from tests.pipelines.conftest import RecordingSink, flite_pcm, whisper_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "sk-test-0123456789"
QUESTION = "How long is the password reset link valid?"
ANSWER = "The reset link stays valid for 30 minutes."


class FakeOpenAI:
    """An OpenAI-compatible server that validates requests and records them."""

    def __init__(self, *, tool_call: bool) -> None:
        self.tool_call = tool_call
        self.requests: list[tuple[str, Any]] = []
        self.errors: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)
        self.app.router.add_post("/v1/audio/transcriptions", self.transcriptions)
        self.app.router.add_post("/v1/audio/speech", self.speech)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.errors.append(message)

    def check_auth(self, request: web.Request) -> None:
        self.check(request.headers.get("Authorization") == f"Bearer {API_KEY}", "Authorization: Bearer <key>")

    async def transcriptions(self, request: web.Request) -> web.Response:
        self.check_auth(request)
        self.check(request.content_type == "multipart/form-data", "transcriptions take multipart/form-data")
        fields: dict[str, Any] = {}
        async for part in await request.multipart():
            assert isinstance(part, BodyPartReader) and part.name
            fields[part.name] = (part.filename, await part.read()) if part.filename else (await part.text())
        self.requests.append(("transcriptions", {k: v for k, v in fields.items() if k != "file"}))
        self.check("file" in fields and "model" in fields, "file and model are required")
        filename, audio = fields["file"]
        with wave.open(io.BytesIO(audio)) as w:
            self.check(w.getframerate() == 16000 and w.getnchannels() == 1, "a 16 kHz mono WAV upload")
            self.check(w.getnframes() > 16000, "the whole utterance is uploaded")
        self.check(str(filename).endswith(".wav"), "the file part has a file name with its format")
        if "language" in fields:
            self.check(len(fields["language"]) == 2, "language is ISO-639-1")
        return web.json_response({"text": QUESTION})

    async def chat(self, request: web.Request) -> web.StreamResponse:
        self.check_auth(request)
        body = await request.json()
        self.requests.append(("chat", body))
        self.check(isinstance(body.get("model"), str) and body["model"], "model is required")
        self.check(body.get("stream") is True, "tokens are streamed")
        roles = [m["role"] for m in body["messages"]]
        self.check(set(roles) <= {"system", "developer", "user", "assistant", "tool"}, f"valid roles: {roles}")
        for tool in body.get("tools", []):
            fn = tool.get("function", {})
            self.check(tool.get("type") == "function" and fn.get("name"), "tools are {type: function, function}")
            self.check(fn.get("parameters", {}).get("type") == "object", "tool parameters are a JSON schema object")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)

        async def send(delta: dict[str, Any], finish: str | None = None) -> None:
            chunk = {
                "id": "chatcmpl-1",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        tool_results = [m for m in body["messages"] if m["role"] == "tool"]
        if self.tool_call and not tool_results:
            self.check(
                any(t["function"]["name"] == "search_knowledge_base" for t in body.get("tools", [])), "tools sent"
            )
            await send({"role": "assistant", "content": None})
            call = {
                "index": 0,
                "id": "call_1",
                "type": "function",
                "function": {"name": "search_knowledge_base", "arguments": ""},
            }
            await send({"tool_calls": [call]})
            await send({"tool_calls": [{"index": 0, "function": {"arguments": json.dumps({"query": QUESTION})}}]})
            await send({}, "tool_calls")
        else:
            if self.tool_call:
                assistant = [m for m in body["messages"] if m["role"] == "assistant" and m.get("tool_calls")]
                self.check(
                    bool(assistant) and assistant[-1]["tool_calls"][0]["id"] == "call_1", "the tool call is sent back"
                )
                self.check(tool_results[-1].get("tool_call_id") == "call_1", "the tool result names its call")
                self.check("30 minutes" in tool_results[-1]["content"], "the tool result holds the passage")
            await send({"role": "assistant", "content": ""})
            for token in ANSWER.split(" "):
                await send({"content": token + " "})
            await send({}, "stop")
        await response.write(b"data: [DONE]\n\n")
        return response

    async def speech(self, request: web.Request) -> web.StreamResponse:
        self.check_auth(request)
        body = await request.json()
        self.requests.append(("speech", body))
        self.check(bool(body.get("model")) and bool(body.get("voice")) and bool(body.get("input")), "model/voice/input")
        self.check(body.get("response_format") == "pcm", "raw PCM is requested")
        # 24 kHz 16-bit mono, 0.5 s per request, sent in odd-sized pieces.
        tone = (np.sin(np.arange(12000) * 2 * np.pi * 300 / 24000) * 8000).astype("<i2").tobytes()
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        await response.prepare(request)
        for i in range(0, len(tone), 4801):
            await response.write(tone[i : i + 4801])
        return response


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def running(call: CallPipeline) -> AsyncIterator[None]:
    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(call.worker)
    run = asyncio.create_task(runner.run())
    try:
        await asyncio.sleep(0.4)
        yield
    finally:
        await call.worker.queue_frame(EndFrame())
        await asyncio.wait_for(run, 20)


async def until(predicate: Any, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return False


async def test_openai_compatible_transcription_chat_with_tools_and_speech(
    demo_retriever: CallsOnRecord, embedder: Embedder, sink: RecordingSink
) -> None:
    fake = FakeOpenAI(tool_call=True)
    async with serve(fake.app) as base_url:
        stages = build_stages(
            asr=ASROptions(backend="openai", base_url=base_url, api_key=API_KEY, model="gpt-4o-mini-transcribe"),
            brain=BrainOptions(backend="openai", base_url=base_url, api_key=API_KEY, model="gpt-4o-mini"),
            tts=TTSOptions(backend="openai", base_url=base_url, api_key=API_KEY, model="gpt-4o-mini-tts"),
            embedder=embedder,
        )
        transport = MemoryTransport()
        call = memory_call(transport, stages, demo_retriever, sink, "openai")
        async with running(call):
            clip = transport.say(flite_pcm(QUESTION))
            await clip.done.wait()
            assert await until(lambda: any(t.role == "agent" for t in sink.turns), 20)
    assert not fake.errors, fake.errors
    kinds = [k for k, _ in fake.requests]
    assert kinds.count("transcriptions") == 1 and kinds.count("chat") == 2 and "speech" in kinds
    (_, transcription) = next(r for r in fake.requests if r[0] == "transcriptions")
    assert transcription["model"] == "gpt-4o-mini-transcribe" and transcription["language"] == "en"
    caller = next(t for t in sink.turns if t.role == "caller")
    agent = next(t for t in sink.turns if t.role == "agent")
    assert caller.text.strip() == QUESTION and agent.text.strip() == ANSWER
    assert [e.data["tool"] for e in sink.events if e.kind == "tool_call"] == ["search_knowledge_base"]
    # The 24 kHz PCM was resampled to the call's 16 kHz: 0.5 s of audio per spoken sentence.
    heard = sum(len(a) for _, a in transport.heard) / 2 / 16000
    assert 0.45 <= heard <= 1.2


async def test_ollama_brain_streams_through_its_openai_compatible_api(
    domain_lm: DomainLM, demo_retriever: CallsOnRecord, sink: RecordingSink
) -> None:
    fake = FakeOpenAI(tool_call=False)
    async with serve(fake.app) as base_url:
        stages = build_stages(
            asr=ASROptions(lm_path=domain_lm.lm_path, dict_path=domain_lm.dict_path),
            brain=BrainOptions(backend="ollama", base_url=base_url.removesuffix("/v1"), model="llama3.2"),
        )
        transport = MemoryTransport()
        call = memory_call(transport, stages, demo_retriever, sink, "ollama")
        async with running(call):
            clip = transport.say(flite_pcm(QUESTION))
            await clip.done.wait()
            assert await until(lambda: any(t.role == "agent" for t in sink.turns), 20)
    chat = [body for kind, body in fake.requests if kind == "chat"]
    assert chat and chat[0]["model"] == "llama3.2"
    # The retrieved passages reach the model as context.
    assert any("30 minutes" in str(m.get("content")) for m in chat[0]["messages"] if m["role"] == "system")
    assert next(t for t in sink.turns if t.role == "agent").text.strip() == ANSWER
    fake.errors = [e for e in fake.errors if "Authorization" not in e]  # Ollama needs no key
    assert not fake.errors, fake.errors


async def test_openai_realtime_session_follows_the_documented_events(
    demo_retriever: CallsOnRecord, sink: RecordingSink
) -> None:
    from websockets.asyncio.server import ServerConnection
    from websockets.asyncio.server import serve as ws_serve

    received: list[dict[str, Any]] = []
    headers: dict[str, str] = {}
    paths: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        paths.append(ws.request.path)
        headers.update(dict(ws.request.headers))
        session = {"type": "realtime", "object": "realtime.session", "id": "sess_1", "model": "gpt-realtime"}
        await ws.send(json.dumps({"type": "session.created", "event_id": "ev_1", "session": session}))
        async for message in ws:
            event = json.loads(message)
            received.append(event)
            if event["type"] == "session.update":
                await ws.send(json.dumps({"type": "session.updated", "event_id": "ev_2", "session": session}))

    async with ws_serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        stages = build_stages(
            brain=BrainOptions(
                backend="openai-realtime", base_url=f"ws://127.0.0.1:{port}/v1/realtime", api_key=API_KEY
            )
        )
        assert stages.asr is None and stages.tts is None  # speech to speech replaces them
        transport = MemoryTransport()
        call = build_pipeline(
            transport=transport,
            stages=stages,
            retriever=demo_retriever,
            sink=sink,
            persona=PersonaSpec(instructions="Be brief."),
            call_id="realtime",
            greet=False,
        )
        async with running(call):
            clip = transport.say(flite_pcm(QUESTION))
            await clip.done.wait()
            assert await until(lambda: any(e["type"] == "input_audio_buffer.append" for e in received), 5)

    assert paths[0] == "/v1/realtime?model=gpt-realtime"
    assert headers.get("authorization") == f"Bearer {API_KEY}"
    update = next(e for e in received if e["type"] == "session.update")["session"]
    assert update["type"] == "realtime" and "Be brief." in update["instructions"]
    names = {t["name"] for t in update.get("tools", [])}
    assert {"search_knowledge_base", "end_call"} <= names
    assert all(t["type"] == "function" and t["parameters"]["type"] == "object" for t in update["tools"])
    appended = [e for e in received if e["type"] == "input_audio_buffer.append"]
    assert all(base64.b64decode(e["audio"]) for e in appended)


PIPER_VOICE = os.environ.get("VOXDESK_TEST_PIPER_VOICE")


async def test_faster_whisper_transcribes_with_a_local_model(
    demo_retriever: CallsOnRecord, sink: RecordingSink
) -> None:
    stages = build_stages(asr=ASROptions(backend="faster-whisper", model_path=whisper_model_dir()))
    transport = MemoryTransport()
    call = memory_call(transport, stages, demo_retriever, sink, "whisper")
    async with running(call):
        clip = transport.say(flite_pcm(QUESTION))
        await clip.done.wait()
        assert await until(lambda: any(t.role == "caller" for t in sink.turns), 30)
    assert "password" in next(t for t in sink.turns if t.role == "caller").text.lower()


@pytest.mark.skipif(
    not PIPER_VOICE,
    reason="no Piper voice on this machine: set VOXDESK_TEST_PIPER_VOICE to a local .onnx with its .onnx.json",
)
async def test_piper_speaks_with_a_local_voice(
    domain_lm: DomainLM, demo_retriever: CallsOnRecord, sink: RecordingSink
) -> None:
    stages = build_stages(
        asr=ASROptions(lm_path=domain_lm.lm_path, dict_path=domain_lm.dict_path),
        tts=TTSOptions(backend="piper", model_path=Path(str(PIPER_VOICE))),
    )
    transport = MemoryTransport()
    call = build_pipeline(
        transport=transport,
        stages=stages,
        retriever=demo_retriever,
        sink=sink,
        persona=PersonaSpec(),
        call_id="piper",
        greet=True,
    )
    async with running(call):
        assert await until(lambda: bool(transport.heard), 20)
