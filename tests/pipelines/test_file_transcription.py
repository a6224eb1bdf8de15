"""Whole-file transcription (``ASRBackend.transcribe``) on every backend that declares it.

pocketsphinx on its pooled decoders; the OpenAI-compatible backend against a local server that checks the
documented ``POST /v1/audio/transcriptions`` request (multipart, ``verbose_json`` with word timestamps);
faster-whisper against a real model when ``VOXDESK_TEST_WHISPER_MODEL_DIR`` names one.
"""

from __future__ import annotations

import io
import wave
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiohttp import BodyPartReader, web

from pipelines.asr.base import RecognitionServiceError
from pipelines.options import ASROptions
from pipelines.registry import backend_class
from tests.pipelines.conftest import flite_pcm, whisper_model_dir

pytestmark = [pytest.mark.integration, pytest.mark.slow]

API_KEY = "sk-test-0123456789"
QUESTION = "How do I reset my password?"


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # aiohttp keeps the socket private
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        await runner.cleanup()


async def test_pocketsphinx_transcribes_a_file_with_word_timings() -> None:
    backend = backend_class("asr", "pocketsphinx").prewarm(ASROptions(processes=0, prewarm_decoders=1))
    try:
        assert backend.capabilities.file_transcription
        pcm = flite_pcm(QUESTION)
        transcript = await backend.transcribe(pcm, sample_rate=16000)
    finally:
        backend.close()
    assert "password" in transcript.text
    assert transcript.words[-1].word == "password"
    starts = [w.start for w in transcript.words]
    assert starts == sorted(starts) and all(w.end > w.start for w in transcript.words)
    assert transcript.words[-1].end <= len(pcm) / 2 / 16000 + 0.05


async def test_openai_compatible_server_gets_the_documented_request() -> None:
    received: dict[str, Any] = {}
    errors: list[str] = []

    async def transcriptions(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {API_KEY}":
            errors.append("Authorization: Bearer <key>")
        if request.content_type != "multipart/form-data":
            errors.append("transcriptions take multipart/form-data")
        async for part in await request.multipart():
            assert isinstance(part, BodyPartReader) and part.name
            received[part.name] = (part.filename, await part.read()) if part.filename else await part.text()
        filename, audio = received.pop("file")
        if not str(filename).endswith(".wav"):
            errors.append("the file part has a file name with its format")
        with wave.open(io.BytesIO(audio)) as w:
            if (w.getframerate(), w.getnchannels(), w.getsampwidth()) != (16000, 1, 2):
                errors.append("a 16 kHz mono 16-bit WAV upload")
        return web.json_response(
            {
                "text": " How do I reset my password? ",
                "words": [{"word": "How", "start": 0.1, "end": 0.3}, {"word": "password", "start": 1.0, "end": 1.5}],
            }
        )

    app = web.Application()
    app.router.add_post("/v1/audio/transcriptions", transcriptions)
    async with serve(app) as base_url:
        cls = backend_class("asr", "openai")
        backend = cls.prewarm(ASROptions(backend="openai", base_url=base_url, api_key=API_KEY, model="whisper-1"))
        transcript = await backend.transcribe(b"\0\0" * 16000, sample_rate=16000)
        broken = cls.prewarm(ASROptions(backend="openai", base_url=base_url + "/missing", api_key=API_KEY))
        with pytest.raises(RecognitionServiceError, match="404"):
            await broken.transcribe(b"\0\0" * 1600, sample_rate=16000)
    assert not errors, errors
    assert received == {
        "model": "whisper-1",
        "language": "en",
        "response_format": "verbose_json",
        "timestamp_granularities[]": "word",
    }
    assert transcript.text == QUESTION
    assert [(w.word, w.start, w.end) for w in transcript.words] == [("How", 0.1, 0.3), ("password", 1.0, 1.5)]


async def test_faster_whisper_transcribes_a_file_with_word_timings() -> None:
    backend = backend_class("asr", "faster-whisper").prewarm(
        ASROptions(backend="faster-whisper", model_path=whisper_model_dir())
    )
    transcript = await backend.transcribe(flite_pcm(QUESTION), sample_rate=16000)
    assert "password" in transcript.text.lower()
    assert transcript.words and all(w.end >= w.start for w in transcript.words)
