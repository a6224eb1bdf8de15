"""Speech recognition backends: process-wide resources, one STT processor per call.

Backends are named in ``pipelines.registry`` only; what one can do is declared here, on its class, as
:class:`ASRCapabilities`, and callers ask that instead of the backend's name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import ClassVar, Protocol, runtime_checkable

from pipecat.frames.frames import DataFrame
from pipecat.services.stt_service import STTService

from pipelines.options import ASROptions

__all__ = [
    "ASRBackend",
    "ASRCapabilities",
    "ASRResult",
    "Evidence",
    "EvidenceProbe",
    "EvidenceProbing",
    "FileTranscript",
    "FileTranscriptionUnsupportedError",
    "RecognitionEvidenceFrame",
    "RecognitionServiceError",
    "TimedWord",
]


@dataclass(frozen=True, slots=True)
class ASRResult:
    """What a recogniser attaches to its transcription frames (``frame.result``)."""

    text: str
    final: bool
    # Time from the end-of-speech signal to this result (final results only).
    finalize_ms: float | None = None
    # Recogniser CPU time for the utterance so far.
    decode_ms: float = 0.0
    audio_ms: float = 0.0
    confidence: float | None = None
    # Other hypotheses of the recogniser's N-best list, best first (final results of engines that have one).
    alternatives: tuple[str, ...] = ()
    # Which of the call's VAD utterances this is of: n for the n-th ``VADUserStartedSpeakingFrame`` (the user
    # aggregator broadcasts each both ways: the recogniser counts the upstream copies, the turn strategies the
    # downstream ones). A final can arrive after the next utterance has started. None: the recogniser does not say.
    utterance: int | None = None


@dataclass
class RecognitionEvidenceFrame(DataFrame):
    """What the recogniser knew beyond a final transcript's text, pushed right after it.

    The user aggregator consumes transcription frames; this one passes it on to the brain, which retrieves
    over the other hypotheses and asks the caller to confirm when the evidence is weak.
    """

    text: str = ""
    alternatives: tuple[str, ...] = ()
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one transcript of a final finds in the knowledge base, by the brain's rules (an evidence probe's answer).

    ``found``: its best passage clears the base's threshold; ``score``: that passage's score (0.0 when none);
    ``weak``: the brain would treat the turn as unsure (``pipelines.brain.extractive.weak_evidence``);
    ``acts``: the brain would act on it instead of searching (a request for a person or a ticket).
    """

    found: bool
    score: float
    weak: bool
    acts: bool = False

    def outranks(self, other: Evidence) -> bool:
        """Whether this transcript is at least as strong as ``other``.

        A request the brain acts on first (a caller who asks for a person is not answered from a passage that
        a mishearing of the request happened to find), then found before not found, then the score.
        """
        return (self.acts, self.found, self.score) >= (other.acts, other.found, other.score)


class EvidenceProbe(Protocol):
    """A final transcript's evidence, by the brain's rules and the knowledge base.

    The call's pipeline builds it (``pipelines.build.evidence_probe``); a recogniser with a second opinion
    (``pipelines.asr.whisper_pool``) takes one, so it never decides itself what the base holds.
    """

    def __call__(self, text: str, confidence: float | None, *, ranking: bool = False) -> Awaitable[Evidence]:
        """The evidence of ``text`` (``confidence``: its mean word confidence, None when the recogniser has none).

        ``ranking``: it will be ranked against another transcript of the same audio, so ``acts`` is asked too
        (otherwise it is left False, which costs nothing).
        """
        ...


@runtime_checkable
class EvidenceProbing(Protocol):
    """A per-call recogniser that asks what a final's transcripts find before it pushes one."""

    def use_evidence_probe(self, probe: EvidenceProbe) -> None:
        """Ask ``probe`` about each final transcript of this call."""
        ...


@dataclass(frozen=True, slots=True)
class ASRCapabilities:
    """What a recognition engine can do (declared on its class; callers ask this, never the backend's name).

    Attributes:
        interim_results: Interim hypotheses are pushed while the caller speaks (it decodes as audio arrives).
        file_transcription: :meth:`ASRBackend.transcribe` turns a whole recording into text with word timings.
        domain_lm: :meth:`ASRBackend.adapt` takes a domain language model and dictionary built from the
            knowledge base (``pipelines.asr.domain_lm``).
        hotwords: :meth:`ASRBackend.adapt` takes knowledge-base terms as hints.
        acoustic_adaptation: Its acoustic model can be adapted to the line's recordings (``voxdesk asr-adapt``,
            ``ASROptions.acoustic_model``).
        offline: Needs no network service: it runs in this process or in processes it starts.
    """

    interim_results: bool = False
    file_transcription: bool = False
    domain_lm: bool = False
    hotwords: bool = False
    acoustic_adaptation: bool = False
    offline: bool = False


@dataclass(frozen=True, slots=True)
class TimedWord:
    """One recognised word of a recording, with its start and end in seconds."""

    word: str
    start: float
    end: float
    confidence: float | None = None


@dataclass(frozen=True, slots=True)
class FileTranscript:
    """The transcript of a whole recording (:meth:`ASRBackend.transcribe`)."""

    text: str
    words: tuple[TimedWord, ...] = ()


class FileTranscriptionUnsupportedError(NotImplementedError):
    """The backend does not declare ``file_transcription``."""


class RecognitionServiceError(RuntimeError):
    """The recognition service a backend relies on failed or could not be reached (worth retrying later)."""

    retryable = True


class ASRBackend(ABC):
    """A speech recognition engine, prewarmed once per process.

    ``prewarm`` loads whatever is heavy (models, decoders, HTTP clients' settings); ``create_service``
    is cheap and returns a fresh pipecat ``STTService`` for one call.

    Attributes:
        name: The name it is registered under in ``pipelines.registry`` (reported, never compared).
        capabilities: What the engine can do.
    """

    name: ClassVar[str] = ""
    capabilities: ClassVar[ASRCapabilities] = ASRCapabilities()

    @classmethod
    @abstractmethod
    def prewarm(cls, options: ASROptions) -> ASRBackend:
        """Load the engine's process-wide resources."""

    @abstractmethod
    def create_service(self, *, call_id: str) -> STTService:
        """A recogniser for one call."""

    async def transcribe(self, pcm: bytes, *, sample_rate: int) -> FileTranscript:
        """Transcribe a whole recording with word timings (backends declaring ``file_transcription``).

        Never holds the event loop: CPU work runs on a thread, network work is awaited.

        Args:
            pcm: 16-bit little-endian mono PCM.
            sample_rate: Its sample rate in Hz.

        Raises:
            FileTranscriptionUnsupportedError: The backend does not transcribe files.
            RecognitionServiceError: The service the backend relies on failed (vendor errors are translated
                to this in the backend).
        """
        raise FileTranscriptionUnsupportedError(f"the {self.name} recogniser does not transcribe files")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release what ``prewarm`` started (worker processes); calls must be over."""

    def adapt(  # noqa: B027 - optional hook
        self, *, lm_path: str, dict_path: str, hotwords: tuple[str, ...] = (), prompt: str | None = None
    ) -> None:
        """Adapt to a changed knowledge base (new calls use it; calls in progress keep theirs).

        Args:
            lm_path: A domain ARPA language model (see ``pipelines.asr.domain_lm``); used where
                ``capabilities.domain_lm``.
            dict_path: Its pronunciation dictionary.
            hotwords: Knowledge-base terms, for engines with ``capabilities.hotwords``.
            prompt: A prompt in callers' style from the knowledge base (``pipelines.asr.kb_hints.kb_prompt``),
                for engines that take one (Whisper, an OpenAI-compatible endpoint).
        """
