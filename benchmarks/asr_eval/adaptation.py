"""Acoustic adaptation for the spoken evaluation: the same voices, different sentences.

Each voice speaks sentences of the demo knowledge base (its statements, not the evaluation's questions: no
question's text is among them). From these, one adapted model is built on all voices (a desk adapted to the
voices it hears), and one per voice without that voice (how adaptation carries to a voice it never heard).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from benchmarks.asr_eval.harness import read_pcm
from benchmarks.asr_eval.render import render
from pipelines.asr.acoustic_adaptation import (
    AdaptationStats,
    Evidence,
    adapted_means,
    default_acoustic_model,
    gather_evidence,
    transcript_words,
    write_adapted_model,
)
from pipelines.asr.domain_lm import load_pronunciations, tokenise_sentences
from pipelines.asr.sphinx_model import SphinxAcousticModel


def adaptation_sentences(corpus: str, questions: Sequence[str], limit: int) -> list[str]:
    """Up to ``limit`` sentences of ``corpus`` of 4-20 dictionary words that are not evaluation questions.

    ``corpus`` is the knowledge base's text in a stable order (``KnowledgeService.corpus_text``: documents in
    the order they were ingested).
    """
    known = set(load_pronunciations())
    excluded = {" ".join(transcript_words(q)) for q in questions}
    out: list[str] = []
    for sentence in tokenise_sentences(corpus):
        words = [w.replace("-", "") for w in sentence]
        text = " ".join(words)
        if 4 <= len(words) <= 20 and all(w in known for w in words) and text not in excluded and text not in out:
            out.append(text)
    return out[:limit]


def voice_evidence(model: SphinxAcousticModel, voice: str, sentences: Sequence[str], out: Path) -> Evidence:
    """Render ``sentences`` in ``voice`` (cached under ``out``, keyed by their text) and gather their evidence."""

    def recordings() -> Iterator[tuple[str, bytes, str]]:
        for i, text in enumerate(sentences):
            path = out / voice / f"{i:03d}-{hashlib.sha1(text.encode()).hexdigest()[:10]}.wav"
            if not path.exists():
                render(voice, text, path)
            yield path.name, read_pcm(path), text

    return gather_evidence(model, recordings())


def build_models(evidence: dict[str, Evidence], out: Path, *, tau: float) -> tuple[Path, dict[str, Path]]:
    """The model adapted on every voice, and per voice the model adapted on all the others."""
    base = default_acoustic_model()
    model = SphinxAcousticModel.load(base)

    def write(name: str, voices: Sequence[str]) -> Path:
        stats = AdaptationStats.empty(model)
        for voice in voices:
            stats = stats.merged(evidence[voice].stats)
        path = out / name
        description: dict[str, object] = {"voices": list(voices), "utterances": stats.utterances, "tau": tau}
        write_adapted_model(base, path, adapted_means(model, stats, tau=tau), description)
        return path

    every = write("all-voices", list(evidence))
    held_out = {v: write(f"without-{v}", [o for o in evidence if o != v]) for v in evidence}
    return every, held_out
