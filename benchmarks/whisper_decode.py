"""Whisper's decode time on this machine against the head start the live path gives it; prints one JSON object.

    .venv/bin/python -m benchmarks.whisper_decode [--voice awb] [--limit 16] [--windows 1000,1500] [--threads 1]
        [--model-dir DIR]

In ``weak`` mode a weak final waits for Whisper's text (``pipelines.asr.whisper_pool``). The decode starts
speculatively after ``pipeline.asr.whisper.speculate_after_ms`` of quiet and the VAD ends the turn
``pipeline.vad.stop_secs`` after the quiet began, so the decode has their difference as a head start
(``head_start_ms``); what it takes beyond that, every weak final waits. Each of the first ``--limit`` team questions
(``benchmarks/asr_eval/questions.json``, development set), spoken by ``--voice``, is decoded by the worker's own
:func:`pipelines.asr.whisper_worker.decode` (tiny.en from the pinned package, int8, greedy) in this process, with the
demo base's prompt (:func:`pipelines.asr.kb_hints.kb_prompt` over the ingested base, as the server builds it) and
without, for
each encoder window; ``encode_ms`` is the features and the encoder's pass alone (the decode cancelled after it),
``wer`` the word error of the prompted decodes. Times are per utterance, p50 over the questions, after one warm-up
decode. ``--model-dir`` decodes with another local CTranslate2 Whisper directory instead of the shipped tiny.en
(the model ``pipeline.asr.whisper.model_path`` would load). Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.asr_eval.render import questions, render
from benchmarks.asr_eval.scoring import edit_distance
from benchmarks.product_kb import demo_data_dir, open_knowledge
from config.settings import Settings
from control_api.logging_setup import configure_logging
from pipelines.asr.acoustic_adaptation import transcript_words
from pipelines.asr.kb_hints import kb_prompt
from pipelines.asr.whisper_pool import default_model_path
from pipelines.asr.whisper_worker import WINDOW_FRAMES, Cancelled, LoadedWhisper, decode, load_model


def head_start_ms(settings: Settings) -> float:
    """The live path's head start for a speculative decode: VAD stop minus the quiet before speculating."""
    return settings.pipeline.vad.stop_secs * 1000.0 - settings.pipeline.asr.whisper.speculate_after_ms


def _p50_ms(run: Callable[[bytes], object], pcms: Sequence[bytes]) -> float:
    """``run`` on each utterance: the median milliseconds (a decode cancelled after its encoder pass counts as done)."""
    times = []
    for pcm in pcms:
        started = time.perf_counter()
        with contextlib.suppress(Cancelled):
            run(pcm)
        times.append((time.perf_counter() - started) * 1000.0)
    return round(statistics.median(times), 1)


async def demo_prompt() -> str | None:
    """Whisper's prompt for the demo base: :func:`kb_prompt` over the ingested base's text, as the server builds it."""
    with tempfile.TemporaryDirectory(prefix="whisper-decode-kb-") as tmp:
        async with open_knowledge(await demo_data_dir(Path(tmp) / "data")) as kb:
            return kb_prompt(await kb.corpus())


def measure(
    voice: str, limit: int, windows: Sequence[int], threads: int, model_dir: Path | None = None
) -> dict[str, Any]:
    """The report: per window, encoder and decode p50 (with and without the prompt) and the prompted WER."""
    prompt = asyncio.run(demo_prompt())
    qs = questions()[:limit]
    with tempfile.TemporaryDirectory(prefix="whisper-decode-") as tmp:
        pcms = []
        for i, q in enumerate(qs):
            with wave.open(str(render(voice, q["text"], Path(tmp) / f"{i}.wav"))) as w:
                pcms.append(w.readframes(w.getnframes()))
    model = model_dir or default_model_path()
    whisper: LoadedWhisper = load_model(str(model), threads=threads)
    decode(whisper, bytes(32000), None)  # the first decode allocates
    report: dict[str, Any] = {
        "benchmark": "whisper_decode",
        "voice": voice,
        "questions": len(pcms),
        "audio_s_mean": round(statistics.fmean(len(p) / 32000 for p in pcms), 2),
        "threads": threads,
        "model": "shipped tiny.en" if model_dir is None else model_dir.name,
        "shipped_window_frames": WINDOW_FRAMES,
        "head_start_ms": head_start_ms(Settings()),
        "windows": {},
    }
    for frames in windows:
        texts: list[str] = []

        def prompted(pcm: bytes, frames: int = frames, texts: list[str] = texts) -> object:
            texts.append(decode(whisper, pcm, prompt, window_frames=frames))
            return None

        decode_ms = _p50_ms(prompted, pcms)
        errors = sum(
            edit_distance(transcript_words(q["text"]), transcript_words(t)) for q, t in zip(qs, texts, strict=True)
        )
        reference = sum(len(transcript_words(q["text"])) for q in qs)

        def encoder_only(pcm: bytes, frames: int = frames) -> object:
            return decode(whisper, pcm, None, cancelled=lambda: True, window_frames=frames)

        def unprompted(pcm: bytes, frames: int = frames) -> object:
            return decode(whisper, pcm, None, window_frames=frames)

        report["windows"][str(frames)] = {
            "encode_ms_p50": _p50_ms(encoder_only, pcms),
            "decode_ms_p50": decode_ms,
            "decode_ms_p50_no_prompt": _p50_ms(unprompted, pcms),
            "wer": round(errors / max(1, reference), 3),
        }
    return report


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, measure, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voice", default="awb", help="A flite voice, or espeak-<voice>.")
    parser.add_argument("--limit", type=int, default=16, help="The first N team questions.")
    parser.add_argument("--windows", default=f"{WINDOW_FRAMES},1500", help="Encoder windows, 10 ms frames each.")
    parser.add_argument("--threads", type=int, default=1, help="CTranslate2 threads (the worker uses one).")
    parser.add_argument("--model-dir", type=Path, default=None, help="Another local CTranslate2 Whisper directory.")
    args = parser.parse_args(argv)
    windows = [int(w) for w in args.windows.split(",") if w.strip()]
    if not windows or any(not 100 <= w <= 3000 for w in windows) or args.limit < 1 or args.threads < 1:
        parser.error("--windows takes 100-3000 frames each; --limit and --threads at least 1")
    if args.model_dir is not None and not (args.model_dir / "model.bin").is_file():
        parser.error(f"--model-dir {args.model_dir}: no model.bin there (a CTranslate2 Whisper directory)")
    configure_logging(level="WARNING")  # on stderr: stdout carries the report
    print(json.dumps(measure(args.voice, args.limit, windows, args.threads, args.model_dir), indent=1), file=sys.stdout)


if __name__ == "__main__":
    main()
