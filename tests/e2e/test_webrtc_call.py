"""The caller page end to end: headless Chromium calls over loopback WebRTC with a flite voice as microphone.

The browser's fake microphone plays a WAV (a few seconds of silence, then the question); the agent answers from
the demo knowledge base. The page keeps what it received (16 kHz samples and a 20 ms energy envelope), which
the tests recognise with pocketsphinx to check that the audio is the agent's spoken answer.
"""

from __future__ import annotations

import base64
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pocketsphinx
import pytest
from playwright.sync_api import BrowserContext, Page, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import CHROMIUM, VoiceServer, chromium_args, flite_pcm, mic_wav, write_wav

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

QUESTION = "How do I reset my password?"
INTERRUPTION = "Sorry, what are your opening hours?"
ANSWER_TIMEOUT_MS = 90_000
# A final agent turn that follows the first final caller turn.
ANSWERED_JS = """() => {
  const turns = window.voxdeskCall.turns;
  const caller = turns.findIndex(t => t.role === 'caller');
  return caller >= 0 && turns.slice(caller + 1).some(t => t.role === 'agent');
}"""
AGENT_SPEAKING_AFTER_CALLER_JS = """() => {
  const ev = window.voxdeskCall.events;
  const caller = ev.findIndex(e => e.type === 'transcript' && e.final && e.role === 'caller');
  return caller >= 0 && ev.slice(caller).some(e => e.type === 'speaking' && e.role === 'agent' && e.speaking);
}"""


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("mic")
    return mic_wav(folder / "question48k.wav", [("silence", 5.0), ("say", QUESTION), ("silence", 60.0)])


@pytest.fixture
def browser(question_wav: Path) -> Iterator[BrowserContext]:
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=chromium_args(question_wav)
        )
        context.set_default_timeout(30_000)
        try:
            yield context
        finally:
            context.close()


def _wait(page: Page, server: VoiceServer, js: str, what: str, timeout: float = ANSWER_TIMEOUT_MS) -> None:
    """Wait for ``js`` in the page; on timeout fail with what the page saw and the server's last log lines."""
    try:
        page.wait_for_function(js, timeout=timeout)
    except PlaywrightTimeoutError:
        events = page.evaluate("() => window.voxdeskCall.events.filter(e => e.type !== 'transcript' || e.final)")
        log_tail = server.log_path.read_text(errors="replace")[-3000:]
        raise AssertionError(f"timed out waiting for {what}; page events: {events}\nserver log:\n{log_tail}") from None


def _start_call(browser: BrowserContext, server: VoiceServer) -> Page:
    page = browser.pages[0] if browser.pages else browser.new_page()
    page.goto(f"{server.base_url}/call?test=1")
    page.click("#call")
    page.wait_for_function("() => window.voxdeskCall.callId !== null")
    return page


def _hang_up(page: Page) -> None:
    page.click("#hangup")
    page.wait_for_function("() => window.voxdeskCall.status === 'ended'")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _recognise(pcm: bytes) -> str:
    decoder = pocketsphinx.Decoder(samprate=16000, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(pcm, False, True)
    decoder.end_utt()
    hyp = decoder.hyp()
    return hyp.hypstr if hyp is not None else ""


def _received_since(page: Page, since_ms: float) -> bytes:
    """The audio the page received from ``since_ms`` (page clock) on, as 16 kHz 16-bit PCM."""
    pcm = base64.b64decode(page.evaluate("() => window.voxdeskCall.receivedPcm()"))
    blocks: list[dict[str, float]] = page.evaluate("() => window.voxdeskCall.rx")
    samples = np.frombuffer(pcm, dtype=np.int16)
    per_block = len(samples) // max(1, len(blocks))
    first = next((i for i, b in enumerate(blocks) if b["t"] >= since_ms), len(blocks))
    return samples[first * per_block :].tobytes()


def _event_time(events: list[dict[str, Any]], **match: Any) -> float:
    return next(e["t"] for e in events if all(e.get(k) == v for k, v in match.items()))


def test_browser_call_answers_from_the_knowledge_base(voice_server: VoiceServer, browser: BrowserContext) -> None:
    page = _start_call(browser, voice_server)
    _wait(page, voice_server, ANSWERED_JS, "the answer")
    _wait(
        page,
        voice_server,
        "() => window.voxdeskCall.events.filter(e => e.type === 'speaking' && e.role === 'agent').length >= 4",
        "the greeting and the answer to finish playing",
    )
    state: dict[str, Any] = page.evaluate(
        "() => ({callId: window.voxdeskCall.callId, turns: window.voxdeskCall.turns,"
        " events: window.voxdeskCall.events, latencies: window.voxdeskCall.latencies})"
    )
    caller_at = _event_time(state["events"], type="transcript", role="caller", final=True)
    answer_pcm = _received_since(page, caller_at)
    _hang_up(page)

    call_id = state["callId"]
    caller_text = next(t["text"] for t in state["turns"] if t["role"] == "caller")
    answer = [t["text"] for t in state["turns"] if t["role"] == "agent"][-1]
    assert "password" in _words(caller_text), caller_text
    assert "password" in _words(answer) or "reset" in _words(answer), answer
    assert state["latencies"], "a latency per answered turn is shown on the page"
    assert page.locator("#transcript li.agent").count() >= 2  # greeting and answer shown
    assert page.locator("#transcript li.agent .latency").count() >= 1  # the answer's latency is shown

    # The audio the browser received after the question is the agent speaking the answer.
    heard = set(_words(_recognise(answer_pcm)))
    content = {w for w in _words(answer) if len(w) > 3}
    assert len(heard & content) >= max(2, len(content) // 3), (sorted(heard), sorted(content))

    rows = voice_server.query("SELECT channel, status, end_reason FROM calls WHERE id = ?", call_id)
    assert rows == [("webrtc", "ended", "caller_hangup")]
    stored = voice_server.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    assert ("caller", caller_text) in stored
    assert ("agent", answer) in stored
    assert voice_server.query("SELECT COUNT(*) FROM call_events WHERE call_id = ? AND kind = 'latency'", call_id)[0][0]
    # The greeting's recording notice was heard whole: the caller's consent is on record.
    assert voice_server.query("SELECT recording FROM consents WHERE call_id = ?", call_id) == [(1,)]


def test_browser_barge_in_stops_the_agent(voice_server: VoiceServer, browser: BrowserContext, tmp_path: Path) -> None:
    page = _start_call(browser, voice_server)
    _wait(page, voice_server, AGENT_SPEAKING_AFTER_CALLER_JS, "the answer to start")
    # Speak over the answer once its first clause has been heard (the page is told as each clause plays).
    _wait(
        page,
        voice_server,
        """() => {
          const ev = window.voxdeskCall.events;
          const c = ev.findIndex(e => e.type === 'transcript' && e.final && e.role === 'caller');
          return c >= 0 && ev.slice(c).some(e => e.type === 'transcript' && !e.final && e.role === 'agent');
        }""",
        "the first clause of the answer",
    )
    heard: str = page.evaluate(
        """() => {
          const ev = window.voxdeskCall.events;
          const c = ev.findIndex(e => e.type === 'transcript' && e.final && e.role === 'caller');
          return ev.slice(c).find(e => e.type === 'transcript' && !e.final && e.role === 'agent').text;
        }"""
    )
    clip = write_wav(tmp_path / "interrupt.wav", flite_pcm(INTERRUPTION), rate=16000)
    spoke_at = page.evaluate("(b64) => window.voxdeskCall.play(b64)", base64.b64encode(clip.read_bytes()).decode())
    # The agent's audio goes quiet soon after the caller starts speaking over it: the first 300 ms of
    # near-silence in what the page receives after the clip started (the benchmark reports the distribution).
    quiet_js = """(spokeAt) => {
      let start = null;
      for (const b of window.voxdeskCall.rx) {
        if (b.t < spokeAt) continue;
        if (b.rms < 0.005) { if (start === null) start = b.t; if (b.t - start >= 300) return start; }
        else start = null;
      }
      return null;
    }"""
    try:
        quiet_from = page.wait_for_function(quiet_js, arg=spoke_at, timeout=30_000).json_value()
    except PlaywrightTimeoutError:
        rx = page.evaluate(
            "(t) => window.voxdeskCall.rx.filter(b => b.t >= t).map(b => [Math.round(b.t - t), "
            "Math.round(b.rms * 1000)])",
            spoke_at,
        )
        raise AssertionError(
            f"the agent's audio never stopped after the barge-in; rx (ms, rms*1000): {rx[:200]}"
        ) from None
    assert quiet_from - spoke_at < 3000, f"agent audio stopped {quiet_from - spoke_at:.0f} ms after the barge-in"
    _wait(
        page,
        voice_server,
        "() => window.voxdeskCall.turns.some(t => t.role === 'agent' && t.interrupted)",
        "the interrupted turn",
    )
    state: dict[str, Any] = page.evaluate(
        "() => ({callId: window.voxdeskCall.callId, turns: window.voxdeskCall.turns})"
    )
    _hang_up(page)

    call_id = state["callId"]
    cut = next(t for t in state["turns"] if t["role"] == "agent" and t["interrupted"])
    stored = voice_server.query(
        "SELECT role, text, interrupted FROM call_turns WHERE call_id = ? ORDER BY seq", call_id
    )
    assert ("agent", cut["text"], 1) in stored
    assert voice_server.query("SELECT COUNT(*) FROM call_events WHERE call_id = ? AND kind = 'barge_in'", call_id)[0][0]
    # The cut turn keeps what was spoken before the cut: the clause the page had heard is in it.
    assert heard.strip() and heard.strip() in cut["text"], (heard, state["turns"])
