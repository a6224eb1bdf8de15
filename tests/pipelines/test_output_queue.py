"""The output transport's reader: queued frames come out at once, an empty queue is waited on as pipecat does."""

from __future__ import annotations

import asyncio
from typing import Any

from pipecat.frames.frames import Frame, TextFrame
from pipecat.utils.frame_queue import FrameQueue

import pipelines.compat.output_reader as output_queue


class Sender:
    """The parts of pipecat's ``MediaSender`` its reader uses."""

    def __init__(self) -> None:
        self._audio_queue = FrameQueue()
        self._mixer = None
        self.filtered: list[Frame] = []
        self.stopped = 0

    async def _filter_audio(self, frame: Frame) -> None:
        self.filtered.append(frame)

    def _apply_volume(self, frame: Frame) -> None:
        pass

    async def _bot_stopped_speaking(self) -> None:
        self.stopped += 1


async def _turns_to_read(reader: Any, count: int) -> int:
    """Event-loop turns that pass while ``count`` already queued frames are read."""
    turns = 0
    loop = asyncio.get_running_loop()

    def tick() -> None:
        nonlocal turns
        turns += 1
        loop.call_soon(tick)

    loop.call_soon(tick)
    for _ in range(count):
        await reader.__anext__()
    return turns


def test_queued_frames_come_out_in_order_without_giving_the_loop_away() -> None:
    async def run(reader_of: Any) -> tuple[int, list[str]]:
        sender = Sender()
        frames = [TextFrame(text=str(i)) for i in range(5)]
        for frame in frames:
            sender._audio_queue.put_nowait(frame)
        reader = reader_of(sender)
        turns = await _turns_to_read(reader, len(frames))
        assert sender.filtered == frames
        await reader.aclose()
        return turns, [f.text for f in sender.filtered]

    output_queue.install()
    ours, order = asyncio.run(run(output_queue._MediaSender._next_frame))
    assert order == ["0", "1", "2", "3", "4"]
    assert ours == 0
    pipecats, _ = asyncio.run(run(output_queue._MediaSender._next_frame.__wrapped__))
    assert pipecats >= 2 * 5  # what it replaces: several loop turns per frame already queued


def test_an_empty_queue_is_waited_on_and_its_timeout_means_the_bot_stopped() -> None:
    async def run() -> None:
        sender = Sender()
        reader = output_queue._without_mixer(sender, 0.05)
        pending = asyncio.ensure_future(reader.__anext__())
        await asyncio.sleep(0.12)
        assert not pending.done() and sender.stopped >= 1  # nothing queued: pipecat's "bot stopped" fallback
        late = TextFrame(text="late")
        sender._audio_queue.put_nowait(late)
        assert await pending is late
        await reader.aclose()

    asyncio.run(run())


def test_install_is_once_and_a_mixer_keeps_pipecats_reader() -> None:
    output_queue.install()
    assert output_queue.install() is False
    sender = Sender()
    sender._mixer = object()  # type: ignore[assignment]
    reader = output_queue._MediaSender._next_frame(sender)
    assert reader.ag_code.co_name == "with_mixer"
