"""The persona editor's spoken preview: real flite speech through the API, and the Play button in headless Chromium.

The WAV the route returns is checked against flite itself (the same voice run from the command line must have the
same sample rate), for loudness and length, and for being a different voice from another one.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from tests.console.conftest import (
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    CHROMIUM,
    CHROMIUM_ARGS,
    OTHER_PASSWORD,
    SUPERVISOR_EMAIL,
    VIEWER_EMAIL,
    LiveServer,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
GREETING = "Hello, thanks for calling Kestrel Broadband. How can I help you today?"


def _client(server: LiveServer, email: str, password: str) -> httpx.Client:
    answer = httpx.post(f"{server.base_url}/api/auth/login", data={"username": email, "password": password}, timeout=30)
    token = answer.json()["access_token"]
    return httpx.Client(base_url=server.base_url, timeout=30, headers={"Authorization": f"Bearer {token}"})


def _decode(body: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(body)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth()) == (1, 2)
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2"), wav.getframerate()


def _flite_rate(voice: str, tmp_path: Path) -> int:
    out = tmp_path / f"{voice}.wav"
    subprocess.run(
        [shutil.which("flite") or "flite", "-voice", voice, "-t", "Hello.", "-o", str(out)], check=True, timeout=30
    )
    with wave.open(str(out)) as wav:
        return wav.getframerate()


def test_preview_speaks_the_greeting_in_the_chosen_flite_voice(live_server: LiveServer, tmp_path: Path) -> None:
    with _client(live_server, SUPERVISOR_EMAIL, OTHER_PASSWORD) as client:
        listed = client.get("/api/personas/preview-voice")
        assert listed.status_code == 200, listed.text
        voices = listed.json()
        assert voices["engine"] == "flite"
        # What flite itself says it has (flite -lv), no more and no less.
        installed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, check=True).stdout.split()[2:]
        assert sorted(voices["voices"]) == sorted(installed)

        spoken = {}
        for voice in ("rms", "slt"):
            answer = client.post("/api/personas/preview-voice", json={"voice": voice, "text": GREETING})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "audio/wav"
            samples, rate = _decode(answer.content)
            assert rate == _flite_rate(voice, tmp_path)
            seconds = len(samples) / rate
            assert 2.0 < seconds < 15.0, seconds  # a dozen words, spoken
            loud = np.sqrt(np.mean(samples.astype(np.float64) ** 2))
            assert loud > 300, loud  # speech, not silence (16-bit full scale is 32767)
            spoken[voice] = samples
        # Two voices, two different recordings (a voice silently falling back to the default would be equal).
        assert not np.array_equal(spoken["rms"][:8000], spoken["slt"][:8000])

        unknown = client.post("/api/personas/preview-voice", json={"voice": "no-such-voice", "text": GREETING})
        assert unknown.status_code == 422
        assert unknown.headers["content-type"].startswith("application/problem+json")
        assert "no-such-voice" in unknown.json()["detail"]
        too_long = client.post("/api/personas/preview-voice", json={"voice": "slt", "text": "a" * 301})
        assert too_long.status_code == 422


def test_a_viewer_may_not_hear_or_list_voices(live_server: LiveServer) -> None:
    with _client(live_server, VIEWER_EMAIL, OTHER_PASSWORD) as client:
        assert client.post("/api/personas/preview-voice", json={"voice": "slt", "text": GREETING}).status_code == 403
        assert client.get("/api/personas/preview-voice").status_code == 403


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def test_play_button_plays_the_greeting(live_server: LiveServer, chromium: Browser, shots: Path) -> None:
    context = chromium.new_context(viewport={"width": 390, "height": 844})
    context.set_default_timeout(20_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{live_server.base_url}/console#/settings")
    page.get_by_label("E-mail").fill(ADMIN_EMAIL)
    page.get_by_label("Password").fill(ADMIN_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Settings", exact=True)).to_be_visible()
    persona = page.get_by_role("form", name="Persona")
    voice = persona.get_by_label("Voice", exact=True)
    expect(voice).to_be_visible()
    voice.select_option("rms")
    with page.expect_response("**/api/personas/preview-voice") as answer:
        persona.get_by_role("button", name="Play preview").click()
    assert answer.value.status == 200 and answer.value.request.method == "POST"
    sent = answer.value.request.post_data_json
    assert sent["voice"] == "rms" and sent["text"] == persona.get_by_label("Greeting", exact=True).input_value()[:300]
    player = persona.get_by_label("Preview audio")
    expect(player).to_be_visible()
    # The browser decoded the WAV: it knows its length.
    page.wait_for_function("() => document.querySelector('audio.voice-player').duration > 1")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(shots / "settings-voice-preview-390.png"), full_page=True)
    assert not errors
    context.close()
