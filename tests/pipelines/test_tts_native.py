"""Resident flite workers: the same audio as the ``flite`` command, and a worker that dies is replaced."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import wave
from collections.abc import Iterator

import pytest

from pipelines.options import TTSOptions
from pipelines.tts.base import trim_leading_silence
from pipelines.tts.flite import FliteBackend
from pipelines.tts.flite_native import FliteWorkerPool

TEXT = "To reset your router, hold the button on the back for ten seconds."


def flite_command(text: str, voice: str, stretch: float) -> tuple[bytes, int]:
    out = subprocess.run(
        ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-t", text, "-o", "/dev/stdout"],
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(out)) as wav:
        return wav.readframes(wav.getnframes()), wav.getframerate()


@pytest.fixture(scope="module")
def pool() -> Iterator[FliteWorkerPool]:
    workers = FliteWorkerPool(["slt", "rms", "kal16"], size=2)
    yield workers
    workers.close()


@pytest.mark.parametrize(("voice", "stretch"), [("slt", 1.0), ("rms", 1.25), ("kal16", 0.8)])
async def test_resident_flite_speaks_exactly_what_the_command_writes(
    pool: FliteWorkerPool, voice: str, stretch: float
) -> None:
    assert await pool.synthesise(TEXT, voice=voice, stretch=stretch) == flite_command(TEXT, voice, stretch)


async def test_requests_spread_over_the_workers_and_each_gets_its_own_answer(pool: FliteWorkerPool) -> None:
    texts = [f"Your ticket number is {n}." for n in range(8)]
    results = await asyncio.gather(*(pool.synthesise(t, voice="slt") for t in texts))
    assert results == [flite_command(t, "slt", 1.0) for t in texts]


async def test_an_unknown_voice_is_an_error_and_the_worker_carries_on(pool: FliteWorkerPool) -> None:
    with pytest.raises(RuntimeError, match="nope"):
        await pool.synthesise("Hello.", voice="nope")
    pcm, rate = await pool.synthesise("Hello.", voice="slt")
    assert rate == 16000 and len(pcm) > 3200


async def test_a_killed_worker_fails_its_request_and_is_replaced() -> None:
    workers = FliteWorkerPool(["slt"], size=2)
    try:
        victim = workers._workers[0]
        request = asyncio.create_task(workers.synthesise(TEXT * 20, voice="slt"))
        await asyncio.sleep(0.05)
        victim.process.kill()
        with pytest.raises(RuntimeError, match="exited"):
            await request
        # The next request is served by the live worker, and the dead one is replaced meanwhile.
        assert (await workers.synthesise("Still here.", voice="slt"))[1] == 16000
        for _ in range(100):
            if all(w.alive for w in workers._workers) and victim not in workers._workers:
                break
            await asyncio.sleep(0.05)
        assert victim not in workers._workers and all(w.alive for w in workers._workers)
        assert (await workers.synthesise("And again.", voice="slt"))[1] == 16000
    finally:
        workers.close()


def test_a_worker_that_cannot_load_its_voices_fails_to_start() -> None:
    with pytest.raises(OSError, match="did not start"):
        FliteWorkerPool(["no-such-voice"], size=1)


async def test_the_flite_service_uses_the_backends_resident_workers() -> None:
    backend = FliteBackend.prewarm(TTSOptions(processes=1))
    try:
        assert backend.pool is not None and backend.pool.size == 1
        service = backend.create_service(call_id="c1", voice="slt")
        pcm, rate = await service.synthesise(TEXT)
        expected, _ = flite_command(TEXT, "slt", 1.0)
        assert (pcm, rate) == (trim_leading_silence(expected, sample_rate=16000), 16000)
    finally:
        backend.close()
    assert all(not w.alive for w in backend.pool._workers)


async def test_urgent_clauses_are_served_before_waiting_later_ones() -> None:
    """One worker, busy: of the clauses waiting, the urgent one (an answer's first) goes next."""
    workers = FliteWorkerPool(["slt"], size=1)
    finished: list[str] = []

    async def say(name: str, text: str, *, urgent: bool) -> None:
        await workers.synthesise(text, voice="slt", urgent=urgent)
        finished.append(name)

    try:
        busy = asyncio.create_task(say("busy", TEXT * 3, urgent=False))
        await asyncio.sleep(0)  # it takes the worker
        later = [asyncio.create_task(say(f"later{i}", f"Then step {i}.", urgent=False)) for i in range(3)]
        await asyncio.sleep(0)
        first = asyncio.create_task(say("first", "Hello.", urgent=True))
        await asyncio.gather(busy, *later, first)
        assert finished == ["busy", "first", "later0", "later1", "later2"]
        # A request cancelled while it waits gives up its place; the worker still serves the others.
        blocker = asyncio.create_task(say("blocker", TEXT, urgent=False))
        await asyncio.sleep(0)
        dropped = asyncio.create_task(say("dropped", "Never mind.", urgent=True))
        kept = asyncio.create_task(say("kept", "Still here.", urgent=False))
        await asyncio.sleep(0)
        dropped.cancel()
        await asyncio.gather(blocker, kept)
        assert finished[-2:] == ["blocker", "kept"] and "dropped" not in finished
        assert workers._free == 1 and not [w for _, _, w in workers._waiting if not w.done()]
    finally:
        workers.close()


@pytest.mark.parametrize("voice", ["slt", "kal16"])
async def test_a_streamed_clause_comes_in_pieces_before_its_synthesis_ends_and_adds_up_to_the_whole(
    pool: FliteWorkerPool, voice: str
) -> None:
    pieces: list[tuple[bytes, int]] = []
    unanswered_at_first: int | None = None
    async for piece in pool.stream(TEXT, voice=voice):
        if not pieces:
            unanswered_at_first = sum(w.pending for w in pool._workers)
        pieces.append(piece)
    pcm, rate = flite_command(TEXT, voice, 1.0)
    assert b"".join(p for p, _ in pieces) == pcm and {r for _, r in pieces} == {rate}
    assert len(pieces) > 5  # 50 ms pieces of a 4 s clause
    assert unanswered_at_first == 1  # the first piece came while the worker was still synthesising the clause
    # Streaming leaves a whole request's audio as it was.
    assert await pool.synthesise(TEXT, voice=voice) == (pcm, rate)


async def test_a_stream_read_only_in_part_frees_its_worker_and_the_next_request_gets_its_own_audio() -> None:
    workers = FliteWorkerPool(["slt"], size=1)
    try:
        stream = workers.stream(TEXT * 3, voice="slt")
        async with contextlib.aclosing(stream):
            assert await anext(stream)
        assert workers._free == 1
        assert await workers.synthesise("And now this.", voice="slt") == flite_command("And now this.", "slt", 1.0)
    finally:
        workers.close()


async def test_the_service_hands_on_the_trimmed_audio_in_chunks_as_it_is_synthesised() -> None:
    backend = FliteBackend.prewarm(TTSOptions(processes=1))
    try:
        service = backend.create_service(call_id="c1", voice="slt")
        chunks = [chunk async for chunk in service.audio(TEXT)]
        expected, rate = await service.synthesise(TEXT)
        assert b"".join(c for c, _ in chunks) == expected and {r for _, r in chunks} == {rate}
        assert all(len(c) == rate * 2 * 80 // 1000 for c, _ in chunks[:-1])  # 80 ms each, the last the rest
    finally:
        backend.close()
