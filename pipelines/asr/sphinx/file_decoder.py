"""A whole recording through one pocketsphinx decoder, with word timings."""

from __future__ import annotations

import time

import pocketsphinx

from pipelines.asr.base import FileTranscript, TimedWord

__all__ = ["decode_file"]

_FRAME_SECS = 0.01  # pocketsphinx's frame rate is 100 per second


def decode_file(decoder: pocketsphinx.Decoder, pcm: bytes, *, sample_rate: int) -> FileTranscript:
    """Decode ``pcm`` (16-bit mono at the decoder's rate) as one utterance; call this off the event loop.

    The audio goes in 20 ms pieces, and the thread yields the GIL every second of audio, so the event loop's
    thread is never held for long.
    """
    piece = sample_rate // 50 * 2
    decoder.start_utt()
    for i in range(0, len(pcm), piece):
        decoder.process_raw(pcm[i : i + piece], False, False)
        if i % (piece * 50) == 0:
            time.sleep(0)  # let the event loop's thread take the GIL between pieces
    decoder.end_utt()
    hyp = decoder.hyp()
    words: list[TimedWord] = []
    for seg in decoder.seg():
        word = str(seg.word)
        if word.startswith(("<", "[")):  # <s>, </s>, <sil> and [NOISE] fillers
            continue
        words.append(
            TimedWord(
                word=word.split("(")[0],
                start=round(seg.start_frame * _FRAME_SECS, 2),
                end=round((seg.end_frame + 1) * _FRAME_SECS, 2),
                confidence=round(float(seg.prob), 3),
            )
        )
    return FileTranscript(text=hyp.hypstr if hyp is not None else "", words=tuple(words))
