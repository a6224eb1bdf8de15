"""How long after the caller's voice ends the VAD ends the turn, with and without the fade rule (issue 16 item 6).

Each spoken question (the team's ``benchmarks/asr_eval/questions.json``; with ``--heldout`` also the held-out
sets' questions, ``benchmarks/heldout/*/questions.json``), rendered per voice as ``benchmarks.heldout_eval``
renders them, is fed in 20 ms chunks, then a second of quiet, to the product's VAD
(:class:`pipelines.vad.SharedSileroVADAnalyzer`, the shipped ``VADOptions``) twice: with ``stop_below_peak`` 0
(Silero alone, the shipped default) and with ``--share`` (the fade rule). Per set and voice:

- ``lag_ms``: the VAD's stop, less ``stop_secs``, after the end of the question's last voiced chunk (RMS >= 300, the
  scripted caller's rule in ``benchmarks.heldout_eval``), p50 / p90 / max: what the caller waits beyond
  ``stop_secs`` before the turn can end, and what the server's latency meter (which starts at the stop less
  ``stop_secs``) does not see;
- ``cut_in_two``: questions where the VAD ended a turn before the question's last voiced chunk.

``--noise-rms`` adds white noise of that RMS over the whole line (speech and quiet). ``share_chosen_on`` says
which voices the shipped share was chosen on (awb and espeak-ng en-us+m3 were not). Run::

    .venv/bin/python -m benchmarks.vad_stop
    .venv/bin/python -m benchmarks.vad_stop --voices rms,awb,espeak-en-us+m3 --heldout
    .venv/bin/python -m benchmarks.vad_stop --voices rms,espeak-en-us+m3 --noise-rms 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from pipecat.audio.vad.vad_analyzer import VADState

from benchmarks.asr_eval.render import questions
from benchmarks.heldout_eval import HELDOUT, audio
from pipelines.options import VADOptions
from pipelines.vad import SharedSileroVADAnalyzer, frame_rms, load_silero, vad_params

RATE = 16000
CHUNK_BYTES = 640  # 20 ms
VOICED_RMS = 300.0
DEVELOPMENT = ("slt", "rms", "kal16", "espeak-en-us", "espeak-en-us+f3")
HELD_OUT = ("awb", "espeak-en-us+m3")


async def stops(pcm: bytes, share: float, model: Any, noise_rms: float) -> tuple[float, list[float]]:
    """The end of the last voiced chunk and the VAD's stops (seconds), ``pcm`` then a second of quiet."""
    options = VADOptions()
    line = np.concatenate([np.frombuffer(pcm, dtype="<i2").astype(np.float64), np.zeros(RATE)])
    if noise_rms:
        line += np.random.default_rng(0).normal(0.0, noise_rms, line.size)
    audio = np.clip(line, -32768, 32767).astype("<i2").tobytes()
    vad = SharedSileroVADAnalyzer(
        model=model,
        sample_rate=RATE,
        params=vad_params(options),
        stop_below_peak=share,
    )
    vad.set_sample_rate(RATE)
    voiced_end, found, state, heard = 0.0, [], VADState.QUIET, False
    for at in range(0, len(audio) - CHUNK_BYTES + 1, CHUNK_BYTES):
        chunk, end = audio[at : at + CHUNK_BYTES], (at + CHUNK_BYTES) / 2 / RATE
        if frame_rms(pcm[at : at + CHUNK_BYTES]) >= VOICED_RMS:
            voiced_end = end
        new = await vad.analyze_audio(chunk)
        heard = heard or new == VADState.SPEAKING
        if heard and new == VADState.QUIET and state != VADState.QUIET:
            found.append(end)
        state = new
    return voiced_end, found


def _figures(rows: list[tuple[float, list[float]]], stop_secs: float) -> dict[str, Any]:
    lags = sorted(
        (next(t for t in found if t >= voiced - 1e-6) - stop_secs - voiced) * 1000
        for voiced, found in rows
        if any(t >= voiced - 1e-6 for t in found)
    )
    return {
        "questions": len(rows),
        "lag_ms": {
            "p50": round(statistics.median(lags)),
            "p90": round(lags[math.ceil(0.9 * len(lags)) - 1]),  # nearest rank
            "max": round(lags[-1]),
        }
        if lags
        else None,
        "no_stop": sum(not any(t >= voiced - 1e-6 for t in found) for voiced, found in rows),
        "cut_in_two": sum(any(t < voiced - 1e-6 for t in found) for voiced, found in rows),
    }


def question_sets(heldout: bool) -> dict[str, list[tuple[str, str]]]:
    """(id, text) per set: the team's spoken questions, and the held-out sets' when asked."""
    sets = {"team": [(q["id"], q["text"]) for q in questions()]}
    if heldout:
        for name in ("riverbend", "demo_callers"):
            rows = json.loads((HELDOUT / name / "questions.json").read_text(encoding="utf-8"))
            sets[name] = [(q["id"], q["text"]) for q in rows]
    return sets


async def run(voices: Sequence[str], share: float, noise_rms: float, heldout: bool) -> dict[str, Any]:
    """Both rules on every question in every voice."""
    model, shipped = load_silero(), VADOptions()
    out: dict[str, Any] = {
        "benchmark": "vad_stop",
        "stop_secs": shipped.stop_secs,
        "share": share,
        "noise_rms": noise_rms,
        "share_chosen_on": {v: v in DEVELOPMENT for v in voices},
        "sets": {},
    }
    for set_name, rows in question_sets(heldout).items():
        for voice in voices:
            pcms = [audio(voice, set_name, q_id, text) for q_id, text in rows]  # rendered once, as heldout_eval does
            per_rule = {}
            for name, rule in (("silero_alone", 0.0), ("fade_rule", share)):
                found = [await stops(pcm, rule, model, noise_rms) for pcm in pcms]
                per_rule[name] = _figures(found, shipped.stop_secs)
            out["sets"].setdefault(set_name, {})[voice] = per_rule
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", default=",".join(DEVELOPMENT + HELD_OUT))
    parser.add_argument("--share", type=float, default=0.03, help="The fade rule's share of the turn's loudest.")
    parser.add_argument("--noise-rms", type=float, default=0.0, help="White noise over the line (int16 RMS).")
    parser.add_argument("--heldout", action="store_true", help="Also the held-out sets' questions.")
    args = parser.parse_args(argv)
    voices = [v for v in args.voices.split(",") if v]
    report = asyncio.run(run(voices, args.share, args.noise_rms, args.heldout))
    print(json.dumps(report, indent=1), file=sys.stdout)


if __name__ == "__main__":
    main()
