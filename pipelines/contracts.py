"""The small interfaces through which the voice pipeline talks to the rest of Voxdesk.

``pipelines`` never imports ``knowledge``, ``control_api`` or ``agent``: it receives objects that
satisfy these Protocols (``agent`` builds them). Frames and per-turn records are dataclasses.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Passage:
    """One retrieved knowledge-base passage with its citation.

    ``text`` may start with its section's heading path on a line of its own (``heading``), as the knowledge
    base stores chunks so that search sees headings; ``body`` is the text without it.
    """

    text: str
    score: float
    document_id: str
    chunk_id: str
    citation: str
    heading: str | None = None
    # Each of the passage's sentences with its cosine to the question (empty when the base has no sentence views).
    closeness: tuple[tuple[str, float], ...] = ()

    @property
    def body(self) -> str:
        """The passage's text without its heading line: what may be read out to a caller."""
        if self.heading and self.text.startswith(self.heading):
            rest = self.text[len(self.heading) :]
            if not rest or rest[0] == "\n":
                return rest.lstrip("\n")
        return self.text


@dataclass(frozen=True, slots=True)
class Retrieval:
    """The answer to one retrieval: best passage first; ``found`` is False below the score threshold.

    ``borderline``: not found, but the best passage came just under the threshold with nothing in the question
    foreign to the base: a confirming question ("Do you mean ...?") rather than "not found". ``unanswerable``: not
    found although the best passage scores above the threshold (the question turns on a word the base lacks).
    ``narrow``: found, but only just over the threshold (weak evidence when the question is a recogniser's guess).
    """

    found: bool
    passages: Sequence[Passage]
    latency_ms: float = 0.0
    borderline: bool = False
    unanswerable: bool = False
    narrow: bool = False


class Retriever(Protocol):
    """Finds knowledge-base passages for a caller's question.

    Retrievals started on interim text are speculative (``log=False``): only the one a turn is answered from
    goes to the query log, through :meth:`log`.
    """

    async def retrieve(
        self, question: str, *, top_k: int = 5, call_id: str | None = None, log: bool = True
    ) -> Retrieval:
        """Retrieve passages for ``question`` (and log the question unless ``log`` is False)."""
        ...

    async def log(self, question: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        """Log a question answered from a retrieval made with ``log=False``."""
        ...


class TextEmbedder(Protocol):
    """Embeds short texts (used to match caller requests to tools)."""

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed ``texts`` into unit-normalised vectors."""
        ...


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """One finished utterance of the transcript."""

    seq: int
    role: str  # caller | agent
    text: str
    started_at: datetime | None
    ended_at: datetime
    interrupted: bool = False
    asr_confidence: float | None = None
    citations: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class LatencyRecord:
    """Per-turn latency: caller's last voiced frame to the agent's first audio frame out, with its split."""

    turn_seq: int
    total_ms: float
    vad_ms: float | None = None
    asr_ms: float | None = None
    retrieval_ms: float | None = None
    llm_ms: float | None = None
    tts_ms: float | None = None


@dataclass(frozen=True, slots=True)
class CallEventRecord:
    """A call event other than latency: barge_in, tool_call, tool_result, handoff, error, status."""

    kind: str
    turn_seq: int | None = None
    data: dict[str, Any] = field(default_factory=dict)


class CallSink(Protocol):
    """Where a call's transcript, events and recording go (``agent`` implements it over the database).

    Implementations must persist each record before returning (a crash loses at most the turn in
    progress) and must not raise: failures are logged and counted by the sink itself.
    """

    async def turn(self, record: TurnRecord) -> None:
        """Persist one finished turn."""
        ...

    async def latency(self, record: LatencyRecord) -> None:
        """Persist one turn's latency."""
        ...

    async def event(self, record: CallEventRecord) -> None:
        """Persist one event."""
        ...

    async def recording(self, *, path: str, fmt: str, channels: int, sample_rate: int, duration_ms: int) -> None:
        """Register the finished recording file."""
        ...


@dataclass(frozen=True, slots=True)
class PersonaSpec:
    """What the agent is called, how it greets, how it sounds and how it behaves."""

    name: str = "Ava"
    greeting: str = "Hello, thanks for calling. How can I help you today?"
    consent_notice: str = "This call may be recorded to improve our service."
    voice: str | None = None
    language: str = "en"
    instructions: str = ""
    speaking_rate: float = 1.0


@dataclass(frozen=True, slots=True)
class TicketRequest:
    """What the agent's ``create_ticket`` tool asks for (the agent records it or files it)."""

    call_id: str
    subject: str
    description: str
    priority: str = "normal"


@dataclass(frozen=True, slots=True)
class HandoffRequest:
    """What the agent's ``transfer_to_human`` tool asks for (the agent opens a handoff record)."""

    call_id: str
    reason: str
    summary: str


class TicketHandler(Protocol):
    """Records a ticket request; returns a reference the agent can read out (e.g. ``"T-1042"``)."""

    async def __call__(self, request: TicketRequest) -> str:
        """Record ``request``."""
        ...


class HandoffHandler(Protocol):
    """Opens a handoff to a human; returns a reference for the call events."""

    async def __call__(self, request: HandoffRequest) -> str:
        """Open a handoff for ``request``."""
        ...


@dataclass(frozen=True, slots=True)
class CollectedDigits:
    """What a digit collection on a phone line gathered: the keyed digits (without the terminator) and its end.

    ``ended`` is ``terminator`` (the caller keyed ``#``), ``max_digits`` or ``timeout`` (digits may still have
    been keyed before the inter-digit timeout).
    """

    digits: str
    ended: str

    @property
    def complete(self) -> bool:
        """The caller finished keying (the terminator, or as many digits as were asked for)."""
        return self.ended in ("terminator", "max_digits")


class DigitCollector(Protocol):
    """Collects the digits the caller keys on a phone line (``agent`` builds it for phone calls only).

    While it runs, keyed digits (``0`` included) go to it, not to the "press 0 for a person" rule. Cancelling the
    awaiting task ends the collection (the caller answered by voice).
    """

    async def __call__(self, *, max_digits: int) -> CollectedDigits:
        """Collect up to ``max_digits`` digits (ended by ``#``, the maximum or a timeout)."""
        ...


class SpokenTextListener(Protocol):
    """Told each piece of the agent's text once its audio has been played (live captions in step with the voice).

    It is awaited on the audio path: it must return promptly and must not raise.
    """

    async def __call__(self, text: str) -> None:
        """Take ``text``, the words whose audio has just been played."""
        ...
