"""The domain language model: a proper smoothed ARPA model, rebuilt on change, used by new calls' decoders."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np
import pocketsphinx
import pytest

from pipelines.asr.domain_lm import (
    GENERAL_LM_PATH,
    DomainLM,
    build_domain_lm,
    normalise_text,
    read_general_lm,
    tokenise_sentences,
)
from pipelines.asr.pocketsphinx import PocketsphinxBackend
from pipelines.options import ASROptions
from tests.pipelines.conftest import flite_pcm

pytestmark = pytest.mark.integration

CORPUS = """# Deliveries
We send your router by tracked courier. Delivery takes 3 to 5 working days and is free.
If you are not home, the courier tries once more the next working day.
# Returns
Return the router within 30 days. We email you a prepaid returns label.
"""


@pytest.fixture(scope="module")
def mixed_lm(tmp_path_factory: pytest.TempPathFactory) -> DomainLM:
    """CORPUS interpolated with the general model (no hand-written phrases), built once for the module."""
    return build_domain_lm(CORPUS, tmp_path_factory.mktemp("mixed"), caller_phrases=(), general_weight=0.05)


def read_arpa(path: Path) -> tuple[dict[tuple[str, ...], float], dict[tuple[str, ...], float]]:
    probs: dict[tuple[str, ...], float] = {}
    bows: dict[tuple[str, ...], float] = {}
    order = 0
    for line in path.read_text().splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1])
            continue
        parts = line.split("\t")
        if order and len(parts) >= 2:
            gram = tuple(parts[1].split())
            probs[gram] = 10 ** float(parts[0])
            if len(parts) == 3:
                bows[gram] = 10 ** float(parts[2])
    return probs, bows


def prob(probs: dict[tuple[str, ...], float], bows: dict[tuple[str, ...], float], gram: tuple[str, ...]) -> float:
    if gram in probs:
        return probs[gram]
    return bows.get(gram[:-1], 1.0) * prob(probs, bows, gram[1:])


def test_normalisation_spells_numbers_and_symbols() -> None:
    assert normalise_text("Delivery takes 3 to 5 days, $120 & 15%") == (
        "delivery takes  three  to  five  days,  dollars  one hundred twenty   and   fifteen  percent "
    )
    assert tokenise_sentences("Wi-Fi works. Call 0800!") == [["wi-fi", "works"], ["call", "eight", "hundred"]]


def test_kneser_ney_distributions_sum_to_one(mixed_lm: DomainLM) -> None:
    lm = mixed_lm
    probs, bows = read_arpa(lm.lm_path)
    vocab = [g[0] for g in probs if len(g) == 1 and g[0] != "<s>"]
    histories = [("<s>",), ("the",), ("<s>", "we"), ("the", "router"), ("tracked",)]
    for history in histories:
        total = sum(prob(probs, bows, (*history, w)) for w in vocab)
        assert math.isclose(total, 1.0, abs_tol=1e-3), (history, total)
    # Every trigram's history and lower-order bigram exist, as ARPA back-off requires.
    bigrams = {g for g in probs if len(g) == 2}
    for gram in (g for g in probs if len(g) == 3):
        assert gram[:2] in bigrams and gram[1:] in bigrams


def test_dictionary_holds_exactly_the_vocabulary(mixed_lm: DomainLM) -> None:
    lm = mixed_lm
    entries = defaultdict(list)
    for line in lm.dict_path.read_text().splitlines():
        word, phones = line.split(" ", 1)
        entries[word.split("(")[0]].append(phones)
    probs, _ = read_arpa(lm.lm_path)
    unigrams = {g[0] for g in probs if len(g) == 1} - {"<s>", "</s>"}
    assert set(entries) == unigrams
    assert entries["router"] and entries["courier"]


def test_rebuild_is_a_no_op_until_the_corpus_changes(tmp_path: Path) -> None:
    first = build_domain_lm(CORPUS, tmp_path)
    mtime = first.lm_path.stat().st_mtime_ns
    again = build_domain_lm(CORPUS, tmp_path)
    assert again.lm_path == first.lm_path and again.lm_path.stat().st_mtime_ns == mtime
    changed = build_domain_lm(CORPUS + "\nThe zebra crossing outside the depot is closed.\n", tmp_path)
    assert changed.corpus_hash != first.corpus_hash and changed.lm_path.exists()


def _decode(backend: PocketsphinxBackend, pcm: bytes) -> str:
    generation, decoder = backend.acquire()
    try:
        decoder.start_utt()
        for i in range(0, len(pcm), 640):
            decoder.process_raw(pcm[i : i + 640], False, False)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""
    finally:
        backend.release(generation, decoder)


def test_new_calls_use_the_rebuilt_model(tmp_path: Path) -> None:
    before = build_domain_lm(CORPUS, tmp_path)
    backend = PocketsphinxBackend.prewarm(
        ASROptions(lm_path=before.lm_path, dict_path=before.dict_path, prewarm_decoders=1)
    )
    pcm = flite_pcm("The zebra crossing is closed.")
    assert "zebra" not in _decode(backend, pcm).split()  # not in the vocabulary yet

    after = build_domain_lm(CORPUS + "\nThe zebra crossing outside the depot is closed.\n", tmp_path)
    generation = backend.generation
    backend.adapt(lm_path=str(after.lm_path), dict_path=str(after.dict_path))
    assert backend.generation == generation + 1
    assert "zebra crossing" in _decode(backend, pcm)


# The general English part (pocketsphinx's bundled en-us trigram model, interpolated with the knowledge base).


def _conditional(lm_path: Path, *gram: str) -> float:
    probs, bows = read_arpa(lm_path)
    return prob(probs, bows, gram)


def test_the_general_model_is_read_from_the_wheel() -> None:
    general = read_general_lm()
    assert len(general.words) == 72547 and len(general.bigram) > 2_000_000 and len(general.trigram) > 1_600_000
    words = {w: i for i, w in enumerate(general.words)}
    # The reader agrees with pocketsphinx's own lookup (which takes the words most recent first).
    model = pocketsphinx.NGramModel(pocketsphinx.Config(), pocketsphinx.LogMath(), str(GENERAL_LM_PATH))
    to_log10 = math.log10(1.0001)
    at = np.flatnonzero((general.t1 == words["how"]) & (general.t2 == words["much"]) & (general.t3 == words["is"]))
    assert len(at) == 1
    assert math.isclose(general.trigram[at[0]], model.prob(["is", "much", "how"]) * to_log10, abs_tol=1e-3)
    bi = np.flatnonzero((general.b1 == words["how"]) & (general.b2 == words["much"]))
    assert math.isclose(general.bigram[bi[0]], model.prob(["much", "how"]) * to_log10, abs_tol=1e-3)


def test_caller_phrasing_absent_from_the_base_comes_from_the_general_model(tmp_path: Path, mixed_lm: DomainLM) -> None:
    assert "problem" not in CORPUS.lower()
    alone = build_domain_lm(CORPUS, tmp_path / "kb", caller_phrases=(), general_weight=0.0)
    mixed = mixed_lm
    assert "problem" not in alone.dict_path.read_text().split()
    assert _conditional(mixed.lm_path, "a", "problem") > 1e-4


def test_a_caller_phrase_absent_from_the_base_is_recognised(mixed_lm: DomainLM) -> None:
    mixed = mixed_lm
    backend = PocketsphinxBackend.prewarm(
        ASROptions(lm_path=mixed.lm_path, dict_path=mixed.dict_path, prewarm_decoders=1, processes=0)
    )
    # Neither "want" nor "someone" is in the base (so neither is in a base-only model's vocabulary).
    heard = _decode(backend, flite_pcm("I want to talk to someone about my bill.")).split()
    assert {"want", "someone"} <= set(heard), heard


def test_a_knowledge_base_term_beats_a_general_near_homophone(mixed_lm: DomainLM) -> None:
    mixed = mixed_lm
    # "home" (the base's: "if you are not home") and "whole" (frequent general English, not in the base)
    # sound alike; both are in the vocabulary.
    words = set(mixed.dict_path.read_text().split())
    assert {"home", "whole"} <= words and "whole" not in CORPUS
    assert _conditional(mixed.lm_path, "are", "not", "home") > 10 * _conditional(mixed.lm_path, "are", "not", "whole")
    backend = PocketsphinxBackend.prewarm(
        ASROptions(lm_path=mixed.lm_path, dict_path=mixed.dict_path, prewarm_decoders=1, processes=0)
    )
    heard = _decode(backend, flite_pcm("If you are not home, the courier tries once more.")).split()
    assert {"home", "courier"} <= set(heard), heard


def test_the_cache_key_covers_the_general_model_and_its_weight(tmp_path: Path) -> None:
    first = build_domain_lm(CORPUS, tmp_path)
    assert build_domain_lm(CORPUS, tmp_path).corpus_hash == first.corpus_hash
    other = build_domain_lm(CORPUS, tmp_path, general_weight=0.5)
    assert build_domain_lm(CORPUS, tmp_path, phrase_weight=1).corpus_hash != first.corpus_hash
    assert other.corpus_hash != first.corpus_hash and other.lm_path.exists() and first.lm_path.exists()


@pytest.mark.parametrize(
    "request_text, words",
    [
        ("I want to talk to a person please.", {"talk", "person"}),
        ("Please put me through to an agent.", {"agent"}),
        ("Can you create a support ticket for me?", {"create", "ticket"}),
    ],
)
def test_the_default_model_hears_the_requests_the_product_acts_on(
    tmp_path_factory: pytest.TempPathFactory, request_text: str, words: set[str]
) -> None:
    """A person and a ticket are asked for in words the base never uses; the default model must hear them."""
    default = build_domain_lm(CORPUS, tmp_path_factory.mktemp("default"))
    backend = PocketsphinxBackend.prewarm(
        ASROptions(lm_path=default.lm_path, dict_path=default.dict_path, prewarm_decoders=1, processes=0)
    )
    heard = _decode(backend, flite_pcm(request_text)).split()
    assert words <= set(heard), heard
