"""A live call over ``WS /api/voice/stream`` with Whisper's second opinion on, as shipped (``best``).

The shipped default is ``best`` (measured: docs/measurements.md), as in ``tests/e2e/test_ws_stream.py``'s calls.
Here the whole product runs in a subprocess (``tests/e2e`` fixtures) with its default settings: flite asks a
question, the agent answers it, and the server's own counters show that the call's final went through the
second-opinion rule (Whisper decoded it and its transcript was kept or outranked, or Whisper was late and
pocketsphinx's text was kept: which one a loaded machine gives is not the point here; that the call is answered
either way is). ``weak`` and the other modes are tested on the real worker in ``test_asr_hybrid.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest

from config.settings import WhisperSecondOpinionSettings
from tests.e2e.conftest import VoiceServer, start_server, stop_server
from tests.e2e.test_ws_stream import _call

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceServer]:
    root = tmp_path_factory.mktemp("whisper-default-e2e")
    proc, server = start_server(root / "data")
    try:
        yield server
    finally:
        stop_server(proc)


def _counted(server: VoiceServer, *names: str) -> float:
    text = httpx.get(server.base_url + "/metrics", timeout=30).text
    total = 0.0
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.startswith(names) and not name.endswith("_created"):
            total += float(value)
    return total


def _second_opinions(server: VoiceServer) -> float:
    names = ("voxdesk_asr_whisper_skipped_total", "voxdesk_asr_whisper_decodes_total", "voxdesk_asr_whisper_fallbacks")
    return _counted(server, *names)


def test_a_live_call_with_the_second_opinion_answers_a_spoken_question(default_server: VoiceServer) -> None:
    assert WhisperSecondOpinionSettings().mode == "best"  # the shipped default, which this server runs
    started = [line for line in default_server.log_path.read_text().splitlines() if "whisper_second_opinion_on" in line]
    assert started and "best" in started[-1], started
    before = _second_opinions(default_server)
    speculated = _counted(default_server, "voxdesk_asr_whisper_speculations_total")
    events, _ = asyncio.run(asyncio.wait_for(_call(default_server, default_server.token("agent")), timeout=120))
    finals = [e for e in events if e["type"] == "transcript" and e["final"]]
    caller = [e["text"] for e in finals if e["role"] == "caller"]
    agent = [e["text"] for e in finals if e["role"] == "agent"]
    assert any("password" in text.lower() for text in caller), caller
    assert agent and ("password" in agent[-1].lower() or "reset link" in agent[-1].lower()), agent
    assert _second_opinions(default_server) >= before + 1, default_server.log_path.read_text()[-3000:]
    # The caller's quiet before the VAD's stop started a speculative decode (used, unused, discarded or busy).
    assert _counted(default_server, "voxdesk_asr_whisper_speculations_total") >= speculated + 1
