"""How many callers speaking at once one pocketsphinx worker process keeps up with; prints one JSON object.

    .venv/bin/python -m benchmarks.asr_workers [--processes 1,2] [--speakers 4,6,8] [--rounds 3]

For each worker count and number of simultaneous speakers, that many streams are opened on
``PocketsphinxBackend`` (the same worker processes calls use). Each is fed a different flite question from
``benchmarks/kb/questions.jsonl`` in real time (20 ms frames, interleaved as calls' audio arrives), every
stream's utterance ends at the same moment, and the time from that end to each stream's final result is
reported (p50/p95/max over all streams and rounds). A worker that cannot decode its streams in real time shows
here as finals arriving seconds late: the case where several callers stop speaking together.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from typing import Any

from benchmarks.voice_webrtc import flite, load_questions
from pipelines.asr.pocketsphinx import PocketsphinxBackend
from pipelines.options import ASROptions

RATE = 16000
FRAME_BYTES = 640


def measure(processes: int, pcms: list[bytes], rounds: int) -> list[float]:
    """Milliseconds from the common end of ``len(pcms)`` utterances to each final result."""
    backend = PocketsphinxBackend.prewarm(ASROptions(processes=processes, prewarm_decoders=0))
    finals: dict[int, float] = {}
    done = [threading.Event() for _ in pcms]

    def on_result(index: int) -> Any:
        def record(result: tuple[Any, ...]) -> None:
            if result[0] != "interim":
                finals[index] = time.perf_counter()
                done[index].set()

        return record

    out: list[float] = []
    try:
        for _ in range(rounds):
            streams = [
                backend.open_stream(on_result(i), sample_rate=RATE, interim_every_frames=3) for i in range(len(pcms))
            ]
            for stream in streams:
                stream.start_utterance(b"")
            start = time.perf_counter()
            longest = max(len(p) for p in pcms)
            for frame, offset in enumerate(range(0, longest, FRAME_BYTES)):
                for stream, pcm in zip(streams, pcms, strict=True):
                    if offset < len(pcm):
                        stream.feed(pcm[offset : offset + FRAME_BYTES])
                time.sleep(max(0.0, start + (frame + 1) * 0.02 - time.perf_counter()))
            for event in done:
                event.clear()
            ended = time.perf_counter()
            for stream in streams:
                stream.end_utterance()
            for event in done:
                event.wait(30)
            out.extend((finals[i] - ended) * 1000 for i in range(len(pcms)) if done[i].is_set())
            for stream in streams:
                stream.close()
    finally:
        backend.close()
    return out


def main() -> None:
    """Run the benchmark and print its JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2")
    parser.add_argument("--speakers", default="4,6,8")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    speakers = [int(x) for x in args.speakers.split(",")]
    pcms = [flite(text) for text in load_questions(max(speakers))]
    results = []
    for processes in (int(x) for x in args.processes.split(",")):
        for count in speakers:
            late = sorted(measure(processes, pcms[:count], args.rounds))
            results.append(
                {
                    "processes": processes,
                    "speakers": count,
                    "finals": len(late),
                    "expected": count * args.rounds,
                    "final_after_end_ms": {
                        "p50": round(statistics.median(late), 1),
                        "p95": round(late[min(len(late) - 1, int(0.95 * len(late)))], 1),
                        "max": round(late[-1], 1),
                    },
                }
            )
    print(json.dumps({"cpus": os.cpu_count(), "rounds": args.rounds, "results": results}, indent=2))


if __name__ == "__main__":
    main()
