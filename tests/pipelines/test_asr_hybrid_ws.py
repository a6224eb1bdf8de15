"""A live call over ``WS /api/voice/stream`` with the shipped default of Whisper's second opinion.

The whole product in a subprocess (``tests/e2e`` fixtures): flite asks a question, the agent answers it, and the
server's own counters show that the call's final went through the second-opinion rule (``weak`` by default:
Whisper decoded it, or the evidence was strong and it was skipped, or Whisper was late and pocketsphinx's text
was kept — any of the three, since which one a loaded machine gives is not the point here).
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from config.settings import WhisperSecondOpinionSettings
from tests.e2e.conftest import VoiceServer, voice_server
from tests.e2e.test_ws_stream import _call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

__all__ = ["voice_server"]  # the session fixture, used here


def _second_opinions(server: VoiceServer) -> float:
    text = httpx.get(server.base_url + "/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(
            ("voxdesk_asr_whisper_skipped_total", "voxdesk_asr_whisper_decodes_total", "voxdesk_asr_whisper_fallbacks")
        ) and not name.endswith("_created"):
            total += float(value)
    return total


def test_a_live_call_in_the_default_mode_answers_a_spoken_question(voice_server: VoiceServer) -> None:
    assert WhisperSecondOpinionSettings().mode == "weak"  # the default this test is about
    before = _second_opinions(voice_server)
    events, _ = asyncio.run(asyncio.wait_for(_call(voice_server, voice_server.token("agent")), timeout=120))
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    caller = [e["text"] for e in finals if e["role"] == "caller"]
    agent = [e["text"] for e in finals if e["role"] == "agent"]
    assert any("password" in text.lower() for text in caller), caller
    assert agent and ("password" in agent[-1].lower() or "reset link" in agent[-1].lower()), agent
    assert _second_opinions(voice_server) >= before + 1, voice_server.log_path.read_text()[-3000:]
    assert "whisper_second_opinion_on" in voice_server.log_path.read_text()
