"""Pure functions of the pipeline: answer-sentence choice, clause split, silence trim, barge-in verdicts."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from pipelines.brain.extractive import best_sentences, split_sentences
from pipelines.contracts import Passage
from pipelines.processors.bargein import BargeInPolicy
from pipelines.tts.base import first_clause_split, speakable, trim_leading_silence

pytestmark = pytest.mark.unit

PASSAGE = (
    "Standard installation is free on every 12-month contract. On Kestrel Flex (no contract) installation costs "
    "$79, charged on your first bill."
)


def test_split_sentences_drops_markdown() -> None:
    text = "## Heading\n- Tap **Forgot password** on the [sign-in](https://x.example) screen. We send a link."
    assert split_sentences(text) == ["Heading", "Tap Forgot password on the sign-in screen.", "We send a link."]


def test_best_sentences_answers_from_the_top_of_the_section() -> None:
    answer = best_sentences("how much does installation cost", PASSAGE)
    assert answer.startswith("Standard installation is free")
    assert "$79" in answer


def test_best_sentences_prefers_the_rare_matching_word() -> None:
    lights = (
        "Solid white: the router is connected to the internet. Flashing white: the router is starting up. "
        "Pulsing amber: the router is installing an update. Red: there is no signal from the fibre line. "
        "Blue flashing: WPS pairing is in progress."
    )
    assert best_sentences("what does the red light on the router mean", lights, max_sentences=1).startswith("Red:")


def test_a_sentence_about_the_page_itself_is_not_spoken() -> None:
    # A help page's lead (demo/knowledge/service-outages.html): the caller has no page in front of them.
    lead = (
        "If your broadband has stopped working, it may be a fault in your home or an outage in your area. "
        "This page explains how to check and what we do to put it right."
    )
    answer = best_sentences("my internet stopped working, what should I do first", lead)
    assert answer == lead.split(". ")[0] + "."
    guide = "This guide explains how to set up the Kestrel Hub 3. Plug the grey cable into the port marked WAN."
    assert "This guide" not in best_sentences("how do I set up the hub", guide)
    # Said when it is all the passage has; a sentence that only mentions a page is kept.
    assert best_sentences("what is on this page", "This page explains our opening hours.") == (
        "This page explains our opening hours."
    )
    hours = "Opening hours are on this page and in the app. The shop opens at 9am."
    assert best_sentences("when are you open", hours).startswith("Opening hours are on this page")


PLANS = (  # a table as the parsers store it: one "Header: value; ..." line per row
    "Plan: Kestrel Basic 100; Download: 100 Mbps; Monthly price (12-month contract): $29.\n"
    "Plan: Kestrel Plus 500; Download: 500 Mbps; Monthly price (12-month contract): $45.\n"
    "Plan: Kestrel Giga 1000; Download: 1000 Mbps; Monthly price (12-month contract): $65."
)
MAIL = (
    "Setting: Incoming mail (IMAP) server; Value: imap.kestrelmail.example.\n"
    "Setting: IMAP port; Value: 993 with SSL/TLS.\n"
    "Setting: Outgoing mail (SMTP) server; Value: smtp.kestrelmail.example.\n"
    "Setting: SMTP port; Value: 465 with SSL/TLS."
)


def test_a_table_is_answered_by_the_rows_the_question_asks_about() -> None:
    # One plan asked about: its row alone, not the whole table read aloud.
    assert best_sentences("what is the monthly price of the kestrel basic plan", PLANS) == PLANS.splitlines()[0]
    assert best_sentences("how much is kestrel plus a month", PLANS) == PLANS.splitlines()[1]
    # A second row joins when it holds a word the question asks that the first lacks ("port").
    answer = best_sentences("which port should I use for outgoing SMTP mail", MAIL)
    assert answer == " ".join(MAIL.splitlines()[2:]), answer
    # Prose keeps its runs.
    assert "$79" in best_sentences("how much does installation cost", PASSAGE)


def test_first_clause_split() -> None:
    assert first_clause_split("Hello, thanks for calling.") == ["Hello, thanks for calling."]
    assert first_clause_split("We email you a prepaid label; drop the box at any parcel shop.") == [
        "We email you a prepaid label;",
        "drop the box at any parcel shop.",
    ]
    head, tail = first_clause_split("If the router is not returned within 30 days we charge a non-return fee of $120.")
    assert head == "If the router is not returned" and tail.startswith("within 30 days")


def test_trim_leading_silence_keeps_20_ms() -> None:
    silence = np.zeros(3200, dtype="<i2")
    tone = (np.cos(np.arange(1600) / 5) * 8000).astype("<i2")
    trimmed = trim_leading_silence(np.concatenate([silence, tone]).tobytes(), sample_rate=16000)
    assert len(trimmed) == (1600 + 320) * 2


@pytest.mark.parametrize(
    ("heard", "verdict"),
    [
        ("uh huh", "backchannel"),
        ("okay", "backchannel"),
        ("right yeah", "backchannel"),
        ("wait what about refunds", "speech"),
        ("stop", "speech"),
        ("prepaid returns label", "echo"),
        ("returns label", "echo"),
        ("", "empty"),
    ],
)
def test_barge_in_verdicts(heard: str, verdict: str) -> None:
    policy = BargeInPolicy(call_id="t")
    policy.note_agent_text("We email you a prepaid returns label; drop the box at any parcel shop.", new_response=True)
    assert policy._judge(heard) == verdict


async def test_agent_audio_gate_holds_resumes_and_drops_across_an_interruption() -> None:
    import asyncio

    from pipecat.frames.frames import OutputAudioRawFrame

    from pipelines.processors.audio_gate import AgentAudioGate
    from pipelines.transports.memory import MemoryTransport

    output = MemoryTransport().output()
    written: list[OutputAudioRawFrame] = []

    async def write(frame: OutputAudioRawFrame) -> bool:  # the transport's own write, as seen by the gate
        written.append(frame)
        return True

    output.write_audio_frame = write  # type: ignore[attr-defined]
    gate = AgentAudioGate(output, call_id="t")
    frame = OutputAudioRawFrame(audio=bytes(640), sample_rate=16000, num_channels=1)

    gate.pause()
    held = asyncio.create_task(output.write_audio_frame(frame))  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    assert not held.done() and not written, "a paused gate holds the write"
    gate.resume()
    assert await held is True and len(written) == 1, "resuming plays the held audio"

    gate.pause()
    held = asyncio.create_task(output.write_audio_frame(frame))  # type: ignore[attr-defined]
    await asyncio.sleep(0.05)
    gate.release_after_interruption()
    assert await held is False and len(written) == 1, "audio held across an interruption is dropped"
    assert await output.write_audio_frame(frame) is True and len(written) == 2  # type: ignore[attr-defined]
    assert gate.pauses == 2 and not gate.paused


async def test_lean_worker_observer_passes_processed_frames_only_to_observers_that_read_them() -> None:
    from pipecat.frames.frames import TextFrame
    from pipecat.observers.base_observer import BaseObserver, FrameProcessed, FramePushed
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.worker import PipelineWorker
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.utils.asyncio.task_manager import TaskManager

    from pipelines.build import LeanWorkerObserver, lean_observer

    class PushesOnly(BaseObserver):
        def __init__(self) -> None:
            super().__init__()
            self.pushed: list[FramePushed] = []

        async def on_push_frame(self, data: FramePushed) -> None:
            self.pushed.append(data)

    class ReadsProcessed(PushesOnly):
        processed: list[FrameProcessed]

        async def on_process_frame(self, data: FrameProcessed) -> None:
            self.processed.append(data)

    pushes, reads = PushesOnly(), ReadsProcessed()
    reads.processed = []
    worker = PipelineWorker(Pipeline([FrameProcessor()]), observers=[pushes])
    lean_observer(worker)
    observer = worker._observer
    assert isinstance(observer, LeanWorkerObserver)
    worker.add_observer(reads)
    await observer.setup(TaskManager(loop=asyncio.get_running_loop()))
    assert observer._proxies is not None
    queued: list[object] = []
    queue = observer._proxies[pushes].queue
    put = queue.put

    async def counting_put(item: object) -> None:
        queued.append(item)
        await put(item)

    queue.put = counting_put  # type: ignore[method-assign]
    try:
        source, frame = FrameProcessor(), TextFrame("hello")
        await observer.on_process_frame(FrameProcessed(source, frame, FrameDirection.DOWNSTREAM, 1))
        await observer.on_push_frame(FramePushed(source, source, frame, FrameDirection.DOWNSTREAM, 2))
        for _ in range(50):
            if reads.processed and reads.pushed and pushes.pushed:
                break
            await asyncio.sleep(0.01)
        assert [d.frame for d in reads.processed] == [frame], "an observer that reads processed frames gets them"
        assert [d.frame for d in pushes.pushed] == [frame] and [d.frame for d in reads.pushed] == [frame]
        assert [type(item) for item in queued] == [FramePushed], "a push-only observer is not sent processed frames"
    finally:
        await observer.cleanup()


async def test_lean_worker_observer_queues_only_the_frames_an_observer_reads() -> None:
    from pipecat.frames.frames import InputAudioRawFrame, TextFrame, TTSAudioRawFrame
    from pipecat.observers.base_observer import BaseObserver, FramePushed
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.utils.asyncio.task_manager import TaskManager

    from agent.calls.runner import LiveCallObserver
    from pipelines.build import LeanWorkerObserver
    from pipelines.processors.latency import LatencyMeter

    class TextOnly(BaseObserver):
        observed_frames = (TextFrame,)

        def __init__(self) -> None:
            super().__init__(observe_every_push=False)
            self.pushed: list[FramePushed] = []

        async def on_push_frame(self, data: FramePushed) -> None:
            self.pushed.append(data)

    class Everything(TextOnly):
        observed_frames = None  # type: ignore[assignment]

    picky, everything = TextOnly(), Everything()
    observer = LeanWorkerObserver(observers=[picky, everything])
    await observer.setup(TaskManager(loop=asyncio.get_running_loop()))
    try:
        source = FrameProcessor()
        audio = InputAudioRawFrame(audio=bytes(640), sample_rate=16000, num_channels=1)
        text = TextFrame("hello")
        for frame in (audio, text, text):  # the text is pushed twice: a second hop is not a first push
            await observer.on_push_frame(FramePushed(source, source, frame, FrameDirection.DOWNSTREAM, 1))
        for _ in range(50):
            if picky.pushed and len(everything.pushed) == 2:
                break
            await asyncio.sleep(0.01)
        assert [d.frame for d in picky.pushed] == [text], "audio is not queued to an observer that reads text"
        assert [d.frame for d in everything.pushed] == [audio, text], "no observed_frames: every first push"
    finally:
        await observer.cleanup()
    # The call's own observers read no caller audio; the meter reads the synthesiser's (first audio of a turn).
    assert not issubclass(InputAudioRawFrame, LiveCallObserver.observed_frames + LatencyMeter.observed_frames)
    assert issubclass(TTSAudioRawFrame, LatencyMeter.observed_frames)


def test_a_passage_body_leaves_out_its_heading_line_only() -> None:
    def passage(text: str, heading: str | None) -> Passage:
        return Passage(text=text, score=0.9, document_id="d", chunk_id="d:0", citation="c", heading=heading)

    heading = "Your account > Adding someone to your account"
    body = "The account holder can add up to 3 authorised users."
    assert passage(f"{heading}\n{body}", heading).body == body
    assert passage(body, None).body == body
    assert passage(body, heading).body == body  # a chunk stored without its heading line
    assert passage(f"{heading} extra\n{body}", heading).body == f"{heading} extra\n{body}"  # not the whole line
    spoken = best_sentences("how many users can I add", passage(f"{heading}\n{body}", heading).body)
    assert spoken == body


def test_menu_paths_are_read_as_steps() -> None:
    assert speakable(" Turn it on under Profile > Security > Two-step. ") == (
        "Turn it on under Profile, then Security, then Two-step."
    )
    assert speakable("Speeds > 100 Mb/s and a->b stay as written") == "Speeds > 100 Mb/s and a->b stay as written"


def test_faq_entries_are_answered_without_repeating_the_question() -> None:
    entry = "Q: Can I get a faster upload speed?\nA: Upload speed depends on your plan. Upgrade in the app."
    assert split_sentences(entry) == ["Upload speed depends on your plan.", "Upgrade in the app."]
    assert best_sentences("can I get a faster upload speed", entry) == (
        "Upload speed depends on your plan. Upgrade in the app."
    )
    assert split_sentences("Quality: A: grade") == ["Quality: A: grade"]  # labels only at a line's start
