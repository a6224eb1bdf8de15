"""``POST /api/voice/transcribe``: an audio file in, text with word timings out, on the prewarmed recogniser.

The file is decoded and resampled to 16 kHz mono with PyAV (any container/codec FFmpeg knows), then fed to
a pooled pocketsphinx decoder in 20 ms pieces on a worker thread, so that the event loop, which carries every
call's audio, is never held for more than a moment.
"""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Callable
from typing import Annotated, Any, Protocol

import av
import numpy as np
from fastapi import APIRouter, Depends, File, UploadFile
from pydantic import BaseModel

from control_api.db.models import User
from control_api.deps import require
from control_api.problems import ProblemError
from control_api.rbac import Permission

SAMPLE_RATE = 16000
FRAME_BYTES = SAMPLE_RATE // 50 * 2
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
MAX_AUDIO_SECS = 600.0
FRAME_SECS = 0.01  # pocketsphinx's frame rate is 100 per second


Caller = Annotated[User, Depends(require(Permission.VOICE_CALL))]


class PooledDecoders(Protocol):
    """A recogniser that lends out pocketsphinx decoders (``pipelines.asr.pocketsphinx.PocketsphinxBackend``)."""

    def acquire(self) -> tuple[int, Any]:
        """Take a decoder (off the event loop)."""
        ...

    def release(self, generation: int, decoder: Any) -> None:
        """Give it back."""
        ...


class WordTiming(BaseModel):
    """One recognised word with its start and end in seconds."""

    word: str
    start: float
    end: float
    confidence: float


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


def _decode_words(decoder: Any, pcm: bytes) -> tuple[str, list[WordTiming]]:
    decoder.start_utt()
    for i in range(0, len(pcm), FRAME_BYTES):
        decoder.process_raw(pcm[i : i + FRAME_BYTES], False, False)
        if i % (FRAME_BYTES * 50) == 0:
            time.sleep(0)  # let the event loop's thread take the GIL between pieces
    decoder.end_utt()
    hyp = decoder.hyp()
    words: list[WordTiming] = []
    for seg in decoder.seg():
        word = str(seg.word)
        if word.startswith(("<", "[")) or word == "<sil>":
            continue
        words.append(
            WordTiming(
                word=word.split("(")[0],
                start=round(seg.start_frame * FRAME_SECS, 2),
                end=round((seg.end_frame + 1) * FRAME_SECS, 2),
                confidence=round(float(seg.prob), 3),
            )
        )
    text = hyp.hypstr if hyp is not None else ""
    return text, words


def transcribe_router(get_asr: Callable[[], Any | None], *, language: str) -> APIRouter:
    """The transcription endpoint over the process's prewarmed recogniser (``get_asr``)."""
    router = APIRouter(prefix="/api/voice", tags=["voice"])

    @router.post(
        "/transcribe",
        response_model=TranscriptionPublic,
        responses={413: {"description": "File too large."}, 415: {"description": "Not audio."}},
    )
    async def transcribe(user: Caller, file: Annotated[UploadFile, File(description="An audio file.")]) -> Any:
        """Transcribe an uploaded audio file (WAV, MP3, OGG, FLAC, ...) with word timings."""
        del user
        asr = get_asr()
        if asr is None or not hasattr(asr, "acquire"):
            raise ProblemError(
                503,
                "File transcription needs the pocketsphinx recogniser, loaded at start-up.",
                type_="asr-unavailable",
            )
        data = await file.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise ProblemError(413, f"The file is larger than {MAX_UPLOAD_BYTES} bytes.", type_="too-large")
        try:
            pcm = await asyncio.to_thread(decode_to_pcm, data)
        except ValueError as exc:
            raise ProblemError(415, f"The upload is not usable audio: {exc}.", type_="not-audio") from None
        decoders: PooledDecoders = asr
        start = time.perf_counter()

        def run() -> tuple[str, list[WordTiming]]:
            generation, decoder = decoders.acquire()
            try:
                return _decode_words(decoder, pcm)
            finally:
                decoders.release(generation, decoder)

        text, words = await asyncio.to_thread(run)
        return TranscriptionPublic(
            text=text,
            words=words,
            duration_secs=round(len(pcm) / 2 / SAMPLE_RATE, 3),
            language=language,
            backend=getattr(asr, "name", type(asr).__name__),
            decode_ms=round((time.perf_counter() - start) * 1000, 1),
        )

    return router
