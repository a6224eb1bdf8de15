"""CPU per second of phone-call audio for each codec the SIP endpoint answers with (prints JSON).

Both directions of a call: the caller's packets decoded and the agent's encoded, 20 ms at a time, through aiortp's
codecs as ``agent/transports/sip/media.py`` uses them; plus the 8 ↔ 16 kHz stream resampling (pipecat's soxr) that
a G.711 call needs around the pipeline and a G.722 call does not (its audio is the pipeline's 16 kHz).

    .venv/bin/python -m benchmarks.sip_codecs [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Sequence

import numpy as np
from aiortp.codecs import PayloadType, get_codec
from pipecat.audio.utils import create_stream_resampler

PIPELINE_RATE = 16000
PHONE_RATE = 8000


def _frames(samples: int) -> list[bytes]:
    """One second of noise-like speech-level audio as 20 ms frames of ``samples`` 16-bit samples."""
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(samples) * 3000).astype(np.int16).tobytes() for _ in range(50)]


def codec_ms_per_second(payload_type: int, rate: int, seconds: int) -> float:
    """CPU milliseconds per second of audio to encode and decode it (a call's two directions)."""
    codec = get_codec(payload_type)
    frames = _frames(rate // 50)
    t0 = time.process_time()
    for _ in range(seconds):
        for frame in frames:
            codec.decode(codec.encode(frame))
    return (time.process_time() - t0) / seconds * 1000


async def resampling_ms_per_second(seconds: int) -> float:
    """CPU milliseconds per second of audio to resample a G.711 call: caller 8 → 16 kHz, agent 16 → 8 kHz."""
    up, down = create_stream_resampler(), create_stream_resampler()
    narrow, wide = _frames(PHONE_RATE // 50)[0], _frames(PIPELINE_RATE // 50)[0]
    t0 = time.process_time()
    for _ in range(seconds * 50):
        await up.resample(narrow, PHONE_RATE, PIPELINE_RATE)
        await down.resample(wide, PIPELINE_RATE, PHONE_RATE)
    return (time.process_time() - t0) / seconds * 1000


def main(argv: Sequence[str] | None = None) -> None:
    """Measure and print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=60, help="Seconds of audio per measurement.")
    args = parser.parse_args(argv)
    # Rounded once, here: the per-call sums are of the printed figures, so the report adds up as printed.
    resampling = round(asyncio.run(resampling_ms_per_second(args.seconds)), 3)
    codecs = {
        "PCMU": round(codec_ms_per_second(int(PayloadType.PCMU), PHONE_RATE, args.seconds), 3),
        "PCMA": round(codec_ms_per_second(int(PayloadType.PCMA), PHONE_RATE, args.seconds), 3),
        "G722": round(codec_ms_per_second(int(PayloadType.G722), PIPELINE_RATE, args.seconds), 3),
    }
    per_call = {
        name: round(ms + (0.0 if name == "G722" else resampling), 3) for name, ms in codecs.items()
    }  # what a call's audio costs in and out of the pipeline, per second of call
    print(
        json.dumps(
            {
                "benchmark": "sip_codecs",
                "seconds_of_audio": args.seconds,
                "codec_ms_cpu_per_audio_second": codecs,
                "g711_resampling_ms_cpu_per_audio_second": resampling,
                "per_call_ms_cpu_per_audio_second": per_call,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
