"""A TTS service around a command-line synthesiser that writes a WAV file to stdout."""

from __future__ import annotations

import asyncio
import io
import os
import time
import wave
from abc import abstractmethod
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

import structlog
from pipecat.frames.frames import ErrorFrame, Frame, InterruptionFrame
from pipecat.processors.frame_processor import FrameDirection
from pipecat.services.settings import TTSSettings
from pipecat.services.tts_service import TTSService

from pipelines.tts.base import first_clause_split, speakable, trim_leading_silence

log = structlog.stdlib.get_logger(__name__)

# A clause is urgent while less than this much of the answer's audio is still to play.
URGENT_SECS = 0.3


class SubprocessTTSService(TTSService):
    """Synthesises each sentence with a subprocess (never on the event loop), first clause first.

    Args:
        call_id: The call (log context).
        trim_silence: Drop the synthesiser's leading near-silence.
        chunk_ms: Size of the audio frames pushed downstream (80 ms: the WebRTC output writes that much at a time).
        **kwargs: Passed to ``TTSService``.
    """

    def __init__(
        self, *, call_id: str, voice: str, trim_silence: bool = True, chunk_ms: int = 80, **kwargs: Any
    ) -> None:
        super().__init__(
            push_start_frame=True,
            push_stop_frames=True,
            settings=TTSSettings(model=None, voice=voice, language=None),
            **kwargs,
        )
        self._call_id = call_id
        self._trim = trim_silence
        self._chunk_ms = chunk_ms
        # When the audio handed on so far will have played (monotonic seconds; reset by an interruption).
        self._audio_until = 0.0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """The TTS processing (pipecat's); an interruption also means nothing of ours is left to play."""
        if isinstance(frame, InterruptionFrame):
            self._audio_until = 0.0
        await super().process_frame(frame, direction)

    def can_generate_metrics(self) -> bool:
        """This service reports TTFB and processing metrics."""
        return True

    @abstractmethod
    def command(self, text: str) -> Sequence[str]:
        """The command line that writes ``text`` as a WAV file to stdout."""

    async def synthesise(self, text: str, *, urgent: bool = False) -> tuple[bytes, int]:
        """16-bit mono PCM of ``text`` and its sample rate, leading near-silence trimmed (if asked).

        ``urgent``: nothing of the answer is playing yet (a synthesiser shared between calls serves it first).
        """
        pcm, rate = await self.render(text, urgent=urgent)
        if self._trim:
            pcm = trim_leading_silence(pcm, sample_rate=rate)
        return pcm, rate

    async def render(self, text: str, *, urgent: bool = False) -> tuple[bytes, int]:
        """Run the synthesiser command; return its 16-bit mono PCM and sample rate, as written.

        ``urgent`` is for synthesisers shared between calls; a process per clause has no queue to jump.
        """
        # stdout is a real OS pipe: under uvloop (uvicorn's default loop) asyncio's PIPE is a socketpair, which
        # a synthesiser that opens /dev/stdout (flite -o /dev/stdout) cannot open, and it then writes nothing.
        # The pipe is read by the event loop itself: no thread is held while the synthesiser runs (with many
        # calls, threads blocked on reads starved aiortc's encoders of the loop's thread pool).
        loop = asyncio.get_running_loop()
        read_fd, write_fd = os.pipe()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.command(text),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=write_fd,
                stderr=asyncio.subprocess.PIPE,
            )
        finally:
            os.close(write_fd)
        stream = asyncio.StreamReader(limit=2**26)
        transport, _ = await loop.connect_read_pipe(
            lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(read_fd, "rb", buffering=0)
        )
        try:
            out, (_, err) = await asyncio.gather(stream.read(), proc.communicate())
        except BaseException:
            if proc.returncode is None:
                proc.kill()
            raise
        finally:
            transport.close()
        if proc.returncode != 0:
            raise RuntimeError(f"synthesiser exited with {proc.returncode}: {err.decode(errors='replace')[:200]}")
        with wave.open(io.BytesIO(out)) as wav:
            rate = wav.getframerate()
            pcm = wav.readframes(wav.getnframes())
        return pcm, rate

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Synthesise ``text`` clause by clause and stream the audio."""
        await self.start_tts_usage_metrics(text)
        try:
            for piece in first_clause_split(speakable(text)):
                # Urgent unless the audio already handed on has more than URGENT_SECS still to play.
                now = time.monotonic()
                pcm, rate = await self.synthesise(piece, urgent=self._audio_until - now < URGENT_SECS)
                self._audio_until = max(self._audio_until, time.monotonic()) + len(pcm) / (2 * rate)

                async def chunks(pcm: bytes = pcm, rate: int = rate) -> AsyncIterator[bytes]:
                    step = rate * 2 * self._chunk_ms // 1000
                    for i in range(0, len(pcm), step):
                        yield pcm[i : i + step]

                async for frame in self._stream_audio_frames_from_iterator(
                    chunks(), in_sample_rate=rate, context_id=context_id
                ):
                    await self.stop_ttfb_metrics()
                    yield frame
        except (OSError, RuntimeError, wave.Error) as exc:
            log.error("speech_synthesis_failed", call_id=self._call_id, error_type=type(exc).__name__)
            yield ErrorFrame(error=f"speech synthesis failed: {exc}")
        finally:
            await self.stop_ttfb_metrics()
