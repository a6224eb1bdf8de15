"""``voxdesk asr-adapt RECORDINGS``: adapt the recogniser's acoustic model to transcribed recordings of a line.

``RECORDINGS`` is a directory of audio files (any format FFmpeg reads; WAV, FLAC, Opus, MP3…), each with a
transcript beside it: ``call-17.wav`` and ``call-17.txt``, what was said, in plain words. Recordings from the
line itself (the codec, the microphones, the accents the desk hears) are what helps: each one is aligned
with its transcript and the model's Gaussians move towards how those sounds are actually heard
(``pipelines.asr.acoustic_adaptation``). One line prints per recording (used, or skipped and why); the
adapted model is written as a directory, and the setting that makes calls use it is printed last.
Exit codes: 0 adapted, 1 no recording could be used, 2 bad arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from agent.transports.transcribe import decode_to_pcm
from config import Settings
from pipelines.asr.acoustic_adaptation import AlignmentError, adapt_acoustic_model
from pipelines.asr.sphinx_model import ModelFormatError

__all__ = ["find_recordings", "run_adapt"]

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".opus", ".mp3", ".m4a", ".webm"})


def find_recordings(directory: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Audio files under ``directory`` with their transcripts, and the audio files that have none."""
    pairs: list[tuple[Path, Path]] = []
    lacking: list[Path] = []
    for audio in sorted(directory.rglob("*")):
        if not audio.is_file() or audio.suffix.lower() not in AUDIO_SUFFIXES:
            continue
        transcript = audio.with_suffix(".txt")
        if transcript.is_file():
            pairs.append((audio, transcript))
        else:
            lacking.append(audio)
    return pairs, lacking


def run_adapt(
    settings: Settings,
    recordings: Path,
    *,
    out: Path | None,
    base: Path | None,
    tau: float,
    echo: Callable[[str], None],
    fail: Callable[[str], None],
) -> int:
    """Adapt and report (progress through ``echo``, errors through ``fail``); returns the exit code."""
    if not recordings.is_dir():
        fail(f"voxdesk: {recordings} is not a directory")
        return 2
    if tau <= 0:
        fail("voxdesk: --tau must be positive")
        return 2
    pairs, lacking = find_recordings(recordings)
    for audio in lacking:
        echo(f"skipped {audio.relative_to(recordings)}: no transcript ({audio.with_suffix('.txt').name})")
    if not pairs:
        fail(f"voxdesk: no audio file with a transcript under {recordings}")
        return 2
    out_dir = out or settings.models_dir / "acoustic-adapted"
    base_dir = base or settings.pipeline.asr.acoustic_model
    unreadable: list[tuple[str, str]] = []

    def readable() -> Iterator[tuple[str, bytes, str]]:
        for audio, transcript in pairs:
            name = str(audio.relative_to(recordings))
            try:
                pcm = decode_to_pcm(audio.read_bytes())
                text = transcript.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError, ValueError) as exc:
                unreadable.append((name, str(exc)))
                echo(f"skipped {name}: {exc}")
                continue
            yield name, pcm, text

    def progress(name: str, skipped: str | None) -> None:
        echo(f"used {name}" if skipped is None else f"skipped {name}: {skipped}")

    try:
        report = adapt_acoustic_model(readable(), out_dir=out_dir, base_dir=base_dir, tau=tau, on_progress=progress)
    except ModelFormatError as exc:
        fail(f"voxdesk: the base model cannot be adapted: {exc}")
        return 2
    except AlignmentError as exc:
        fail(f"voxdesk: {exc}")
        return 1
    skipped = len(report.skipped) + len(unreadable) + len(lacking)
    echo(
        f"adapted on {report.utterances} recordings ({report.audio_secs:.0f} s of audio, {skipped} skipped); "
        f"log-likelihood per frame {report.log_likelihood_before:.2f} → {report.log_likelihood_after:.2f}"
    )
    echo(f"model written to {out_dir}; to use it: VOXDESK_PIPELINE__ASR__ACOUSTIC_MODEL={out_dir}")
    return 0
