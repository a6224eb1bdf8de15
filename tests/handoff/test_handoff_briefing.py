"""The briefing's summary written by an OpenAI-compatible chat model, against a local stand-in of the API.

The stand-in checks every request against OpenAI's documented chat-completions contract (``POST
/v1/chat/completions``, ``Authorization: Bearer``, a JSON body with ``model`` and ``messages`` of ``role`` and
string ``content``, known parameters only, in range) and answers with the documented ``chat.completion`` object.
A failing, slow or empty answer keeps the extractive summary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import SecretStr

from agent.calls.briefing import LLMBriefing
from config.settings import Settings

pytestmark = [pytest.mark.integration]

KEY = "sk-test-briefing"
MODEL = "briefing-model"
# Request body fields of POST /v1/chat/completions (OpenAI API reference, "Create chat completion").
DOCUMENTED = {
    "model",
    "messages",
    "audio",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "max_completion_tokens",
    "max_tokens",
    "metadata",
    "modalities",
    "n",
    "parallel_tool_calls",
    "prediction",
    "presence_penalty",
    "reasoning_effort",
    "response_format",
    "seed",
    "service_tier",
    "stop",
    "store",
    "stream",
    "stream_options",
    "temperature",
    "tool_choice",
    "tools",
    "top_logprobs",
    "top_p",
    "user",
}
ROLES = {"system", "developer", "user", "assistant", "tool"}
BRIEFING: dict[str, Any] = {
    "summary": "The caller asked: I want to talk to a person.",
    "transcript": [
        {"seq": 1, "role": "agent", "text": "Hi, this is Ava from Acme. How can I help?"},
        {"seq": 2, "role": "caller", "text": "My parcel never arrived, order one two three four."},
        {"seq": 3, "role": "agent", "text": "Parcels arrive within five working days."},
        {"seq": 4, "role": "caller", "text": "I want to talk to a person."},
    ],
    "reason": "caller asked for a person",
}
ANSWER = "The caller's parcel for order 1234 has not arrived; they were told delivery takes five working days."


class FakeChat:
    """OpenAI's chat completions on loopback: checks each request, answers as the mode says."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.app = web.Application()
        self.app.router.add_post("/v1/chat/completions", self.chat)

    def check(self, ok: bool, message: str) -> None:
        if not ok:
            self.violations.append(message)

    async def chat(self, request: web.Request) -> web.Response:
        self.check(request.headers.get("Authorization") == f"Bearer {KEY}", "Authorization: Bearer <key>")
        self.check(request.content_type == "application/json", "Content-Type: application/json")
        body = await request.json()
        self.requests.append(body)
        self.check(isinstance(body, dict), "a JSON object")
        self.check(set(body) <= DOCUMENTED, f"undocumented fields {set(body) - DOCUMENTED}")
        self.check(isinstance(body.get("model"), str) and bool(body["model"]), "model: a non-empty string")
        messages = body.get("messages")
        self.check(isinstance(messages, list) and len(messages) > 0, "messages: a non-empty array")
        for message in messages or []:
            self.check(message.get("role") in ROLES, f"role {message.get('role')!r}")
            self.check(isinstance(message.get("content"), str) and message["content"] != "", "content: a string")
            self.check(set(message) <= {"role", "content", "name"}, f"message fields {set(message)}")
        temperature = body.get("temperature", 1)
        self.check(isinstance(temperature, int | float) and 0 <= temperature <= 2, "temperature in [0, 2]")
        for field in ("max_tokens", "max_completion_tokens"):
            if field in body:
                self.check(isinstance(body[field], int) and body[field] > 0, f"{field}: a positive integer")
        self.check(body.get("stream") in (None, False), "not streamed")
        self.check(body.get("n", 1) == 1, "one choice")
        if self.mode == "slow":
            await asyncio.sleep(2)  # twice the writer's timeout (1 s); the fixture's cleanup waits this out
        if self.mode == "error":
            return web.json_response(
                {"error": {"message": "overloaded", "type": "server_error", "param": None, "code": None}}, status=500
            )
        content = "" if self.mode == "empty" else ANSWER
        return web.json_response(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content, "refusal": None},
                        "logprobs": None,
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 120, "completion_tokens": 25, "total_tokens": 145},
            }
        )


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeChat, str]]:
    chat = FakeChat()
    runner = web.AppRunner(chat.app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield chat, f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_the_llm_writes_the_summary_from_the_transcript_and_reason(fake: tuple[FakeChat, str]) -> None:
    chat, url = fake
    writer = LLMBriefing(base_url=url, api_key=KEY, model=MODEL, timeout_s=3)
    briefing = await writer.apply(BRIEFING, call_id="c1")
    assert chat.violations == []
    assert briefing["summary"] == ANSWER and briefing["summary_by"] == "llm"
    assert briefing["extractive_summary"] == BRIEFING["summary"]
    assert briefing["transcript"] == BRIEFING["transcript"]  # the rest of the briefing is untouched
    (request,) = chat.requests
    assert request["model"] == MODEL
    user = request["messages"][-1]["content"]
    assert "Caller: I want to talk to a person." in user and "Assistant: Parcels arrive" in user
    assert "caller asked for a person" in user


@pytest.mark.parametrize("mode", ["error", "slow", "empty"])
async def test_a_failing_llm_keeps_the_extractive_summary(fake: tuple[FakeChat, str], mode: str) -> None:
    chat, url = fake
    chat.mode = mode
    writer = LLMBriefing(base_url=url, api_key=KEY, model=MODEL, timeout_s=1.0)
    briefing = await writer.apply(BRIEFING, call_id="c1")
    assert chat.violations == []
    assert len(chat.requests) == 1  # no retries: the person is waiting
    assert briefing["summary"] == BRIEFING["summary"] and briefing["summary_by"] == "extractive"


async def test_an_unreachable_llm_keeps_the_extractive_summary() -> None:
    writer = LLMBriefing(base_url="http://127.0.0.1:9/v1", api_key=KEY, model=MODEL, timeout_s=1.0)
    briefing = await writer.apply(BRIEFING, call_id="c1")
    assert briefing["summary"] == BRIEFING["summary"] and briefing["summary_by"] == "extractive"


def test_only_an_openai_brain_writes_briefings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("VOXDESK_"):
            monkeypatch.delenv(name)
    assert LLMBriefing.from_settings(Settings()) is None  # the extractive brain
    openai_brain = {"backend": "openai", "base_url": "http://127.0.0.1:8000/v1", "api_key": SecretStr(KEY)}
    settings = Settings.model_validate({"pipeline": {"llm": openai_brain}, "handoff": {"briefing_timeout_s": 2}})
    writer = LLMBriefing.from_settings(settings)
    assert writer == LLMBriefing(base_url="http://127.0.0.1:8000/v1", api_key=KEY, model="gpt-4o-mini", timeout_s=2)
    off = Settings.model_validate({"pipeline": {"llm": openai_brain}, "handoff": {"briefing_llm": False}})
    assert LLMBriefing.from_settings(off) is None
    ollama = Settings.model_validate({"pipeline": {"llm": {"backend": "ollama"}}})
    assert LLMBriefing.from_settings(ollama) is None
