"""``POST /api/voice/transcribe`` on the real pocketsphinx recogniser: text, word timings, errors, roles.

The endpoint asks the recogniser's capabilities, never its name: one that does not transcribe files is a 501.
"""

from __future__ import annotations

import io
import subprocess
import wave
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pipecat.services.stt_service import STTService

from agent.transports.transcribe import transcribe_router
from config import Settings
from control_api.app import create_app
from control_api.rbac import Role
from pipelines.asr.base import ASRBackend, ASRCapabilities
from pipelines.asr.pocketsphinx import PocketsphinxBackend
from pipelines.options import ASROptions
from tests.agent.conftest import bearer, make_token

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def recogniser() -> PocketsphinxBackend:
    return PocketsphinxBackend.prewarm(ASROptions(prewarm_decoders=1))


@pytest.fixture
def client(settings: Settings, recogniser: PocketsphinxBackend) -> Iterator[TestClient]:
    app = create_app(settings, routers=[transcribe_router(lambda: recogniser, language="en")])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def _flite_wav(text: str, rate: int = 16000) -> bytes:
    wav = subprocess.run(["flite", "-voice", "slt", "-t", text, "-o", "/dev/stdout"], check=True, capture_output=True)
    if rate == 16000:
        return wav.stdout
    # Resampled and in another container, to show any FFmpeg-readable audio is accepted.
    out = subprocess.run(
        ["sox", "-t", "wav", "-", "-r", str(rate), "-t", "flac", "-"], input=wav.stdout, check=True, capture_output=True
    )
    return out.stdout


def test_transcribes_with_word_timings(client: TestClient) -> None:
    _, token = make_token(client, Role.AGENT)
    audio = _flite_wav("How do I reset my password?", rate=44100)
    response = client.post(
        "/api/voice/transcribe", files={"file": ("question.flac", audio, "audio/flac")}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "password" in body["text"]
    words = body["words"]
    assert [w["word"] for w in words][-1] == "password"
    starts = [w["start"] for w in words]
    assert starts == sorted(starts) and all(w["end"] > w["start"] for w in words)
    assert 1.0 < body["duration_secs"] < 3.0 and words[-1]["end"] <= body["duration_secs"] + 0.05


def test_refuses_non_audio_and_roles(client: TestClient) -> None:
    _, agent = make_token(client, Role.AGENT)
    _, viewer = make_token(client, Role.VIEWER)
    wav = io.BytesIO()
    with wave.open(wav, "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(16000)
        handle.writeframes(b"\0\0" * 1600)
    files = {"file": ("a.wav", wav.getvalue(), "audio/wav")}
    assert client.post("/api/voice/transcribe", files=files).status_code == 401
    assert client.post("/api/voice/transcribe", files=files, headers=bearer(viewer)).status_code == 403
    silence = client.post("/api/voice/transcribe", files=files, headers=bearer(agent))
    assert silence.status_code == 200 and silence.json()["words"] == []
    junk = client.post(
        "/api/voice/transcribe", files={"file": ("a.wav", b"not audio at all", "audio/wav")}, headers=bearer(agent)
    )
    assert junk.status_code == 415 and junk.headers["content-type"].startswith("application/problem+json")
    assert client.post("/api/voice/transcribe", headers=bearer(agent)).status_code == 422


class StreamingOnly(ASRBackend):
    """A recogniser that declares no file transcription (the capability, not a name, decides)."""

    name = "streaming-only"
    capabilities = ASRCapabilities(interim_results=True)

    @classmethod
    def prewarm(cls, options: ASROptions) -> StreamingOnly:
        return cls()

    def create_service(self, *, call_id: str) -> STTService:
        raise NotImplementedError


@pytest.mark.parametrize(
    ("asr", "status", "slug"), [(StreamingOnly(), 501, "asr-no-file-transcription"), (None, 503, "asr-unavailable")]
)
def test_a_recogniser_that_cannot_transcribe_files_is_a_problem_not_a_500(
    settings: Settings, asr: ASRBackend | None, status: int, slug: str
) -> None:
    app = create_app(settings, routers=[transcribe_router(lambda: asr, language="en")])
    with TestClient(app, raise_server_exceptions=False) as test_client:
        _, token = make_token(test_client, Role.AGENT)
        files = {"file": ("q.wav", _flite_wav("Hello"), "audio/wav")}
        response = test_client.post("/api/voice/transcribe", files=files, headers=bearer(token))
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"].endswith(slug)
