"""Plain option records for building stages (filled by composition roots from ``Settings``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class VADOptions:
    """Silero VAD and turn-taking options."""

    confidence: float = 0.7
    start_secs: float = 0.064
    stop_secs: float = 0.2
    min_volume: float = 0.6
    # The echo-aware gate's echo return loss until the call has measured one (``None``: no echo-aware gate,
    # pipecat's smoothed gate only). See ``pipelines.vad``.
    echo_margin_db: float | None = 6.0
    # A window under this share of the turn's loudest counts toward the stop whatever Silero says (0: off).
    stop_below_peak: float = 0.0
    smart_turn: bool = False
    # Extra wait after VAD silence before the turn ends (on top of ``stop_secs``; the turn also waits for the
    # recogniser's final text, which arrives a few ms after the VAD's stop).
    user_speech_timeout: float = 0.0


@dataclass(frozen=True, slots=True)
class ASROptions:
    """Speech recognition options."""

    backend: str = "pocketsphinx"
    language: str = "en"
    sample_rate: int = 16000
    model_path: Path | None = None
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    # pocketsphinx: the domain LM files (``None``: the wheel's general model).
    lm_path: Path | None = None
    dict_path: Path | None = None
    # pocketsphinx: the acoustic model directory (``None``: the wheel's en-us model; ``voxdesk asr-adapt``
    # writes adapted ones).
    acoustic_model: Path | None = None
    # pocketsphinx: second decoding passes (slower, a little more accurate).
    accurate: bool = False
    # The knowledge base's terms (faster-whisper hotwords) and its prompt (pipelines.asr.kb_hints.kb_prompt: the
    # initial prompt of faster-whisper, of Whisper's second opinion, of an OpenAI-compatible endpoint).
    hotwords: tuple[str, ...] = ()
    prompt: str | None = None
    prewarm_decoders: int = 2
    # pocketsphinx: worker processes decoding calls' speech (0: threads in this process; None: half the CPUs, at
    # least two). One worker keeps up with about 4 callers speaking at once; at 6 the last final came 1 s late, at
    # 8 nearly 3 s (``python -m benchmarks.asr_workers``); an idle worker costs only its memory.
    processes: int | None = None


@dataclass(frozen=True, slots=True)
class BrainOptions:
    """Options of the agent's brain."""

    backend: str = "extractive"
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    temperature: float = 0.2
    # extractive: below this top-passage score the agent says it does not know (``None``: the retriever's
    # own ``found`` verdict decides).
    answer_threshold: float | None = None
    # extractive: minimum cosine similarity for a non-search tool to be chosen.
    tool_threshold: float = 0.55
    max_sentences: int = 3
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TTSOptions:
    """Speech synthesis options."""

    backend: str = "flite"
    voice: str | None = None
    model_path: Path | None = None
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None
    speaking_rate: float = 1.0
    sample_rate: int = 16000
    # Resident synthesiser processes (flite); None: the CPU count, at most 4.
    processes: int | None = None
