"""Our own frames, passed between our processors alongside pipecat's."""

from __future__ import annotations

from dataclasses import dataclass, field

from pipecat.frames.frames import DataFrame

from pipelines.contracts import Retrieval


@dataclass
class KnowledgeFrame(DataFrame):
    """Passages retrieved for the caller's latest utterance (pushed just before the turn's context)."""

    question: str = ""
    retrieval: Retrieval = field(default_factory=lambda: Retrieval(found=False, passages=()))
    retrieval_ms: float = 0.0
    # How long the turn waited for it (retrieval starts at the final transcript, before the turn ends).
    waited_ms: float = 0.0


@dataclass
class AnswerMetaFrame(DataFrame):
    """What the brain based its answer on (pushed before the answer's text)."""

    citations: tuple[str, ...] = ()
    tool: str | None = None
    brain_ms: float = 0.0
