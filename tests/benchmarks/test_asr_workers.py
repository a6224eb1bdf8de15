"""The ASR worker benchmark measures what it says: every stream's final, timed from the common end."""

from __future__ import annotations

from benchmarks.asr_workers import measure
from benchmarks.voice_webrtc import flite, load_questions


def test_every_stream_gets_its_final_timed_from_the_end_of_speech() -> None:
    pcms = [flite(text) for text in load_questions(2)]
    late = measure(1, pcms, rounds=1)
    assert len(late) == 2, "one final per stream"
    assert all(0 <= ms < 5000 for ms in late)
