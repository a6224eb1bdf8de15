"""A TTS service around a command-line synthesiser that writes a WAV file to stdout."""

from __future__ import annotations

import asyncio
import contextlib
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

from pipelines.tts.base import first_clause_split, leading_silence, speakable, trim_leading_silence

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

    async def render_stream(self, text: str, *, urgent: bool = False) -> AsyncGenerator[tuple[bytes, int], None]:
        """``text``'s audio in pieces (PCM, rate) as the synthesiser writes them; here, once it has written all."""
        yield await self.render(text, urgent=urgent)

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

    async def audio(self, text: str, *, urgent: bool = False) -> AsyncGenerator[tuple[bytes, int], None]:
        """``text``'s audio in ``chunk_ms`` pieces (PCM, rate) as it is synthesised, leading near-silence trimmed.

        The same samples as :meth:`synthesise`: pieces are held back only until the first loud sample.
        """
        held, started, rate = b"", not self._trim, 0
        step = 0
        async for pcm, rate in self.render_stream(text, urgent=urgent):
            held += pcm
            if not started:
                cut = leading_silence(held, sample_rate=rate)
                if cut is None:
                    continue  # nothing loud yet: all of it may still be trimmed
                held, started = held[cut:], True
            step = step or rate * 2 * self._chunk_ms // 1000
            while len(held) >= step:
                yield held[:step], rate
                held = held[step:]
        if held:
            yield held, rate

    async def _handed_on(
        self, first: tuple[bytes, int], rest: AsyncIterator[tuple[bytes, int]]
    ) -> AsyncIterator[bytes]:
        """``first`` then ``rest``'s PCM, each counted in when the audio handed on will have played."""
        pcm, rate = first
        while True:
            self._audio_until = max(self._audio_until, time.monotonic()) + len(pcm) / (2 * rate)
            yield pcm
            following = await anext(rest, None)
            if following is None:
                return
            pcm, rate = following

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame | None, None]:
        """Synthesise ``text`` clause by clause and stream the audio as it is synthesised."""
        await self.start_tts_usage_metrics(text)
        try:
            for piece in first_clause_split(speakable(text)):
                # Urgent unless the audio already handed on has more than URGENT_SECS still to play.
                urgent = self._audio_until - time.monotonic() < URGENT_SECS
                async with contextlib.aclosing(self.audio(piece, urgent=urgent)) as audio:
                    first = await anext(audio, None)
                    if first is None:
                        continue

                    async for frame in self._stream_audio_frames_from_iterator(
                        self._handed_on(first, audio), in_sample_rate=first[1], context_id=context_id
                    ):
                        await self.stop_ttfb_metrics()
                        yield frame
        except (OSError, RuntimeError, wave.Error) as exc:
            log.error("speech_synthesis_failed", call_id=self._call_id, error_type=type(exc).__name__)
            yield ErrorFrame(error=f"speech synthesis failed: {exc}")
        finally:
            await self.stop_ttfb_metrics()
