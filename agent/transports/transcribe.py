"""``POST /api/voice/transcribe``: an audio file in, text with word timings out, on the prewarmed recogniser.

The file is decoded and resampled to 16 kHz mono with PyAV (any container/codec FFmpeg knows), then handed to
the process's recogniser, whichever backend it is, if it declares ``capabilities.file_transcription``; the
backend keeps the event loop, which carries every call's audio, free (its CPU work runs on a thread).
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Annotated, Any

import av
import numpy as np
from fastapi import APIRouter, Depends, File, UploadFile
from pydantic import BaseModel

from control_api.db.models import User
from control_api.deps import require
from control_api.problems import ProblemError
from control_api.rbac import Permission
from pipelines.asr.base import ASRBackend, RecognitionServiceError

SAMPLE_RATE = 16000
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_AUDIO_SECS = 600.0


Caller = Annotated[User, Depends(require(Permission.VOICE_CALL))]


class WordTiming(BaseModel):
    """One recognised word with its start and end in seconds (and the recogniser's confidence, if it gives one)."""

    word: str
    start: float
    end: float
    confidence: float | None


class TranscriptionPublic(BaseModel):
    """The transcript of an uploaded file."""

    text: str
    words: list[WordTiming]
    duration_secs: float
    language: str
    backend: str
    decode_ms: float


def decode_to_pcm(data: bytes, *, max_secs: float = MAX_AUDIO_SECS) -> bytes:
    """Any audio file → 16 kHz mono 16-bit little-endian PCM; ``ValueError`` when it is not audio."""
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError) as exc:
        raise ValueError("not an audio file") from exc
    with container:
        if not container.streams.audio:
            raise ValueError("no audio stream")
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        out = bytearray()
        try:
            for frame in container.decode(audio=0):
                for chunk in resampler.resample(frame):
                    out += chunk.to_ndarray().astype(np.int16).tobytes()
                if len(out) > max_secs * SAMPLE_RATE * 2:
                    raise ValueError(f"longer than {max_secs:.0f} seconds")
            for chunk in resampler.resample(None):
                out += chunk.to_ndarray().astype(np.int16).tobytes()
        except av.error.FFmpegError as exc:
            raise ValueError("the audio could not be decoded") from exc
    return bytes(out)


def transcribe_router(get_asr: Callable[[], ASRBackend | None], *, language: str) -> APIRouter:
    """The transcription endpoint over the process's prewarmed recogniser (``get_asr``)."""
    router = APIRouter(prefix="/api/voice", tags=["voice"])

    @router.post(
        "/transcribe",
        response_model=TranscriptionPublic,
        responses={
            413: {"description": "File too large."},
            415: {"description": "Not audio."},
            501: {"description": "The configured recogniser does not transcribe files."},
            502: {"description": "The recognition service failed."},
            503: {"description": "No recogniser is loaded (start-up, or speech-to-speech mode)."},
        },
    )
    async def transcribe(user: Caller, file: Annotated[UploadFile, File(description="An audio file.")]) -> Any:
        """Transcribe an uploaded audio file (WAV, MP3, OGG, FLAC, ...) with word timings."""
        del user
        asr = get_asr()
        if asr is None:
            raise ProblemError(503, "No speech recogniser is loaded in this process.", type_="asr-unavailable")
        if not asr.capabilities.file_transcription:
            raise ProblemError(
                501,
                f"The configured recogniser ({asr.name}) does not transcribe files.",
                type_="asr-no-file-transcription",
            )
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ProblemError(413, f"The file is larger than {MAX_UPLOAD_BYTES} bytes.", type_="too-large")
        try:
            pcm = await asyncio.to_thread(decode_to_pcm, data)
        except ValueError as exc:
            raise ProblemError(415, f"The upload is not usable audio: {exc}.", type_="not-audio") from None
        start = time.perf_counter()
        try:
            transcript = await asr.transcribe(pcm, sample_rate=SAMPLE_RATE)
        except RecognitionServiceError as exc:
            raise ProblemError(502, f"The recognition service failed: {exc}.", type_="asr-failed") from None
        return TranscriptionPublic(
            text=transcript.text,
            words=[
                WordTiming(word=w.word, start=w.start, end=w.end, confidence=w.confidence) for w in transcript.words
            ],
            duration_secs=round(len(pcm) / 2 / SAMPLE_RATE, 3),
            language=language,
            backend=asr.name,
            decode_ms=round((time.perf_counter() - start) * 1000, 1),
        )

    return router
