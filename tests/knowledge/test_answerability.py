"""The answerability check (knowledge/answerability.py): real MiniLM, real embedded store, a small base.

Each mechanism on its own: an on-topic question whose key word the base never mentions ("bitcoin" to a company
that takes cards) is "not found" although its best passage scores above the threshold; the same question with
a word the base uses is found; a caller's everyday or near-synonym words are not taken for foreign ones; the
base's words are matched by stem, prefix, run-together spelling and sound; the words' vectors are stored with
the calibration and reused for an unchanged base.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from knowledge import answerability as answerability_module
from knowledge.embedders import create_embedder
from knowledge.embedders.base import Embedder
from knowledge.kb import KnowledgeBase
from knowledge.retrieval import HybridRetriever, RetrievalConfig
from knowledge.stores.embedded import EmbeddedStore
from knowledge.types import Chunk

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

PASSAGES: dict[str, tuple[str, str]] = {
    "paying": (
        "Billing > How can I pay?",
        "Billing > How can I pay?\nWe accept direct debit, debit or credit card, and bank transfer. We stopped "
        "accepting cheques in 2023. Paying by direct debit takes $3 off your monthly bill.",
    ),
    "phone": (
        "FAQ > Do you offer a home phone line?",
        "FAQ > Do you offer a home phone line?\nYes. Kestrel Talk is a home phone service over your fibre "
        "line for $6 a month, with unlimited evening and weekend calls to UK landlines.",
    ),
    "discounts": (
        "Plans > Discounts",
        "Plans > Discounts\nStudents with a valid student card get 15% off any plan. Customers aged 65 or over "
        "get $5 off every month. Only one of the student and the age discount can apply to an account.",
    ),
    "router": (
        "Router > What the lights mean",
        "Router > What the lights mean\nSolid white means the router is online and working normally. Flashing "
        "white means it is starting up. Solid amber means it has no internet connection: restart it and check "
        "the cables. Red means there is no signal from the fibre line.",
    ),
    "mail": (
        "Mail > Mailboxes",
        "Mail > Mailboxes\nEvery account includes up to five email addresses. Each mailbox holds 10 GB of email. "
        "Suspected spam is moved to the Junk folder and deleted after 30 days. Wi-Fi calling is not offered.",
    ),
    "moving": (
        "Moving home > When to tell us",
        "Moving home > When to tell us\nTell us about your move at least 21 days before your moving date in the "
        "app. The first move in any twelve months is free and a further move costs $49. Cancelling is free.",
    ),
}


async def _embedder() -> Embedder:
    embedder = create_embedder("minilm", cache_dir=ROOT / "data" / "models")
    await embedder.warm()
    return embedder


async def _base(embedder: Embedder, directory: Path) -> KnowledgeBase:
    store = EmbeddedStore(dimension=embedder.dimension)
    retriever = HybridRetriever(embedder=embedder, store=store, config=RetrievalConfig(score_threshold=0.47))
    kb = KnowledgeBase(embedder=embedder, store=store, retriever=retriever)
    for doc, (heading, text) in PASSAGES.items():
        await store.add(
            await kb.embed_chunks(
                doc, doc, [Chunk(seq=0, text=text, heading=heading, page=None, token_count=len(text.split()))]
            )
        )
    await retriever.enable_calibration(directory)
    return kb


async def test_an_on_topic_question_whose_key_word_the_base_never_mentions_is_not_found(tmp_path: Path) -> None:
    embedder = await _embedder()
    kb = await _base(embedder, tmp_path)
    retriever = kb.retriever
    check = retriever.answerability
    assert check is not None
    threshold = retriever.config.score_threshold
    for question in ("Can I cancel my gym membership?", "do you sell mobile phone SIM only deals"):
        checked = await kb.retrieve(question)
        # The best passage scores above the threshold, within the band: only the check says "not found".
        assert threshold <= checked.passages[0].score < threshold + answerability_module.BAND, question
        assert not checked.found and checked.unanswerable and not checked.borderline, question
        retriever.answerability = None
        assert (await kb.retrieve(question)).found, question  # the same search without the check "finds" it
        retriever.answerability = check
    # A question the base answers in its own words, in the same band of scores, is found.
    answered = await kb.retrieve("Can I move my broadband when I move house?")
    assert answered.found and answered.passages[0].document_id == "moving" and not answered.unanswerable


async def _foreign(kb: KnowledgeBase, question: str, document: str) -> str | None:
    """The check's verdict for ``question`` against ``document``'s passage, whatever the passage's score."""
    retriever = kb.retriever
    check = retriever.answerability
    views = retriever.views
    assert check is not None and views is not None
    chunk = next(c for c in views.chunks if c.document_id == document)

    async def embed(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return np.asarray(await kb.embedder.embed_array(texts), dtype=np.float32)

    def score(vector: npt.NDArray[np.float32]) -> float:
        value = views.passage_score(chunk.id, vector)
        assert value is not None
        return value

    return await check.foreign(question, embed, score)


async def test_a_word_that_pulls_away_from_the_passage_is_foreign_a_callers_near_synonym_is_not(
    tmp_path: Path,
) -> None:
    embedder = await _embedder()
    kb = await _base(embedder, tmp_path)
    assert await _foreign(kb, "Can I pay my bill with bitcoin?", "paying") == "bitcoin"
    assert await _foreign(kb, "Can I pay my bill by credit card?", "paying") is None  # no candidate word
    # "blinking" is not a base word, but means "flashing"; "keeps" is near the base's "keep"-like words.
    assert await _foreign(kb, "the light on my router keeps blinking white, what does that mean?", "router") is None
    check = kb.retriever.answerability
    assert check is not None
    assert check.candidates("how much is the money for the house") == []  # everyday words are not key words


def test_the_bases_words_are_matched_by_stem_prefix_spelling_and_sound() -> None:
    texts = [text for _, text in PASSAGES.values()]
    _, stems, prefixes = answerability_module._forms(texts)
    check = answerability_module.Answerability([], np.zeros((0, 384), dtype=np.float32), stems, prefixes, _sound(texts))
    assert check.known("mailboxes")  # stem
    assert check.known("cancellation")  # first five letters of "cancelling"
    assert check.known("wifi")  # "Wi-Fi" run together
    assert check.known("kestral")  # sounds like "Kestrel"
    assert not check.known("bitcoin")
    assert check.candidates("Can I pay with bitcoin?") == ["bitcoin"]


def _sound(texts: list[str]) -> answerability_module.SoundAlike:
    return answerability_module.SoundAlike(texts)


async def test_the_words_vectors_are_stored_and_reused_for_an_unchanged_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = await _embedder()
    kb = await _base(embedder, tmp_path)
    assert (tmp_path / answerability_module.FILE_NAME).exists()
    first = kb.retriever.answerability
    assert first is not None and len(first.words) == first.vectors.shape[0] > 50
    calls: list[int] = []
    original = embedder.embed_array

    async def counting(texts: list[str]) -> object:
        calls.append(len(texts))
        return await original(texts)

    monkeypatch.setattr(embedder, "embed_array", counting)
    again = await _base(embedder, tmp_path)
    assert again.retriever.answerability is not None
    assert np.allclose(again.retriever.answerability.vectors, first.vectors)
    assert len(first.words) not in calls  # the words were not embedded again
