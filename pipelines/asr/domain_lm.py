"""A domain language model for pocketsphinx, built from knowledge-base text.

The model is a trigram ARPA file with interpolated Kneser-Ney smoothing (Chen & Goodman 1998, with one
absolute discount per order estimated as ``D = n1 / (n1 + 2 n2)``), written together with a
pronunciation dictionary restricted to its vocabulary (taken from pocketsphinx's CMU dictionary).
A small vocabulary makes the decoder both faster and more accurate on the knowledge base's words.

The knowledge-base model is linearly interpolated, in ARPA form (the union of both models' n-grams, each
probability ``λ·P_kb + (1-λ)·P_general``, back-off weights recomputed so every distribution sums to one),
with a general English trigram model when ``general_weight`` > 0: pocketsphinx's own bundled ``en-us.lm.bin``
(the CMU Sphinx US English generic model, 72 547 words, 2.05 M bigrams, 1.67 M trigrams, BSD licence, shipped
in the wheel), restricted to the knowledge base's words plus the ``general_words`` most frequent general words,
its bigrams and trigrams pruned by probability.

The corpus also holds ``CALLER_PHRASES``: the requests the product itself acts on (a person, a ticket, yes/no
to a confirming question, ending the call) and common question openings, counted ``phrase_weight`` times. The
general model is off by default (``GENERAL_WEIGHT`` = 0): measured on the team's set it cost the espeak-ng voice
right answers (0.633 → 0.55) and, without the phrases, made the requests the product acts on unrecognisable
("I want to talk to a person please" → "i want above to percent please"); see docs/measurements.md, "Domain LM
from a general corpus". Files are named by a hash of the corpus, the phrases, the general model and the
weights: rebuilding with an unchanged knowledge base is a no-op.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import struct
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from pocketsphinx import get_model_path

__all__ = [
    "CALLER_PHRASES",
    "GENERAL_LM_PATH",
    "DomainLM",
    "GeneralLM",
    "build_domain_lm",
    "general_lm_digest",
    "load_pronunciations",
    "normalise_text",
    "read_general_lm",
    "tokenise_sentences",
]

GENERAL_LM_PATH = Path(get_model_path()) / "en-us" / "en-us.lm.bin"
"""The general English model that the domain model is interpolated with (ships in the pocketsphinx wheel)."""

# Measured on the team's development set (benchmarks/asr_eval questions, demo knowledge base): see
# docs/measurements.md, "Domain LM from a general corpus". Never fitted on benchmarks/heldout. 0.05 was the
# grid's pick for the general model alone; with it the espeak-ng voice lost right answers, so it is off.
GENERAL_WEIGHT = 0.0  # 1 - λ: the general model's share of every probability
GENERAL_WORDS = 1000  # the general model's most frequent words added to the knowledge base's vocabulary
MIN_GENERAL_BIGRAM = -2.5  # log10 P(w | v): general bigrams kept at or above it
MIN_GENERAL_TRIGRAM = -1.0  # log10 P(w | u v): general trigrams kept at or above it

# Phrasing that callers of a help desk use around the knowledge base's own words. Weighted up in the
# corpus so that question openings are likely even when the knowledge base is written as statements.
CALLER_PHRASES: tuple[str, ...] = (
    "how do i",
    "how can i",
    "how do you",
    "how long does it take",
    "how much does it cost",
    "how many",
    "what is",
    "what are",
    "what is the",
    "what happens if",
    "what should i do if",
    "can i",
    "can you",
    "can you tell me",
    "can you help me",
    "could you tell me",
    "i want to",
    "i would like to",
    "i need to",
    "i need help with",
    "i have a question about",
    "i can't",
    "i forgot my",
    "is it possible to",
    "is there a",
    "do you",
    "do you have",
    "does it",
    "where can i",
    "where is",
    "where do i",
    "when will",
    "when can i",
    "why is",
    "why does",
    "why can't i",
    "which",
    "who do i contact about",
    "please",
    "thank you",
    "thanks",
    "yes",
    "no",
    "yes please",
    "no thanks",
    "okay",
    "ok",
    "right",
    "uh huh",
    "sure",
    "great",
    "hello",
    "hi",
    "goodbye",
    "bye",
    "that's all",
    "that is all thank you",
    "i want to talk to a human",
    "can i speak to a person",
    "transfer me to an agent",
    "let me talk to someone",
    "connect me with a real person",
    "i want to speak to a representative",
    "please create a ticket",
    "open a support ticket",
    "i want to report a problem",
    "file a complaint",
    "i'm done",
    "end the call",
    "hang up",
    "what is my",
    "tell me about",
    "how does it work",
    "my account",
    "my order",
    "my password",
    "my email address",
)

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at ", "$": " dollars ", "€": " euros "}
_TOKEN = re.compile(r"[a-z]+(?:['-][a-z]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n+")


def _number_words(n: int) -> str:
    """Spell out 0..999999 the way a caller says it."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        tens, ones = divmod(n, 10)
        return _TENS[tens] + ("" if ones == 0 else " " + _ONES[ones])
    if n < 1000:
        hundreds, rest = divmod(n, 100)
        return _ONES[hundreds] + " hundred" + ("" if rest == 0 else " " + _number_words(rest))
    if n < 1_000_000:
        thousands, rest = divmod(n, 1000)
        return _number_words(thousands) + " thousand" + ("" if rest == 0 else " " + _number_words(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def normalise_text(text: str) -> str:
    """Lower-case ``text`` and spell numbers and symbols as words, the way they are spoken."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"https?://\S+|\S+@\S+\.\S+", " ", text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", text)
    text = re.sub(r"\d+", lambda m: " " + _number_words(int(m.group())) + " ", text)
    return text


def tokenise_sentences(text: str) -> list[list[str]]:
    """Split ``text`` into sentences of normalised word tokens."""
    sentences = []
    for raw in _SENTENCE_END.split(text):
        tokens = _TOKEN.findall(normalise_text(raw))
        if tokens:
            sentences.append(tokens)
    return sentences


def load_pronunciations(path: Path | None = None) -> dict[str, list[str]]:
    """Read a CMU-format dictionary: word → its pronunciation lines (alternates included)."""
    path = path or Path(get_model_path()) / "en-us" / "cmudict-en-us.dict"
    entries: dict[str, list[str]] = defaultdict(list)
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            head, _, phones = line.strip().partition(" ")
            if not phones:
                continue
            word = head.split("(", 1)[0]
            entries[word].append(phones.strip())
    return dict(entries)


@dataclass(frozen=True, slots=True)
class DomainLM:
    """A built domain model: the ARPA file, its dictionary and what went into it."""

    lm_path: Path
    dict_path: Path
    corpus_hash: str
    vocabulary_size: int
    sentences: int
    oov_tokens: int


def _fragments(sentences: Iterable[list[str]], vocab: set[str]) -> tuple[list[list[str]], int]:
    """Split sentences at words without a pronunciation (such words cannot be recognised)."""
    out: list[list[str]] = []
    oov = 0
    for sentence in sentences:
        current: list[str] = []
        for whole in sentence:
            parts = [whole] if whole in vocab or "-" not in whole else whole.split("-")
            for token in parts:
                if token in vocab:
                    current.append(token)
                    continue
                oov += 1
                if current:
                    out.append(current)
                current = []
        if current:
            out.append(current)
    return out, oov


def _discount(counts: Iterable[int]) -> float:
    """Absolute discount from counts of counts, ``n1 / (n1 + 2 n2)``, kept inside a sane range."""
    cc = Counter(counts)
    n1, n2 = cc.get(1, 0), cc.get(2, 0)
    if n1 == 0:
        return 0.5
    return min(0.9, max(0.1, n1 / (n1 + 2 * n2)))


@dataclass(slots=True)
class _NGramModel:
    """A trigram model as linear probabilities: explicit n-grams and back-off weights per history."""

    p1: dict[str, float]
    p2: dict[tuple[str, str], float]
    p3: dict[tuple[str, str, str], float]
    bow1: dict[str, float] = field(default_factory=dict)  # history (v,) → back-off weight to unigrams
    bow2: dict[tuple[str, str], float] = field(default_factory=dict)  # history (u, v) → weight to bigrams

    def bigram(self, v: str, w: str) -> float:
        """P(w | v), backing off to the unigram."""
        p = self.p2.get((v, w))
        return p if p is not None else self.bow1.get(v, 1.0) * self.p1.get(w, 0.0)

    def trigram(self, u: str, v: str, w: str) -> float:
        """P(w | u v), backing off to the bigram."""
        p = self.p3.get((u, v, w))
        return p if p is not None else self.bow2.get((u, v), 1.0) * self.bigram(v, w)


def _kneser_ney(sentences: Sequence[list[str]]) -> _NGramModel:
    """Estimate an interpolated Kneser-Ney trigram model."""
    bos, eos = "<s>", "</s>"
    tri: Counter[tuple[str, str, str]] = Counter()
    for sentence in sentences:
        padded = [bos, bos, *sentence, eos]
        for i in range(2, len(padded)):
            tri[(padded[i - 2], padded[i - 1], padded[i])] += 1
    # The (<s>, <s>, w) trigrams only carry sentence starts: fold them into bigram counts of <s>.
    bi_raw: Counter[tuple[str, str]] = Counter()
    trigrams: Counter[tuple[str, str, str]] = Counter()
    for (u, v, w), c in tri.items():
        if u == bos and v == bos:
            bi_raw[(bos, w)] += c
        else:
            trigrams[(u, v, w)] = c
            bi_raw[(v, w)] += 0  # make sure the bigram exists
    # Continuation counts for the lower orders (raw counts where the history starts at <s>).
    bi_cont: Counter[tuple[str, str]] = Counter()
    for _u, v, w in trigrams:
        bi_cont[(v, w)] += 1
    bigram_counts: dict[tuple[str, str], int] = {}
    for (v, w), raw in bi_raw.items():
        bigram_counts[(v, w)] = raw if v == bos else bi_cont[(v, w)]
    for v, w in bi_cont:
        if v != bos:
            bigram_counts[(v, w)] = bi_cont[(v, w)]
    uni_cont: Counter[str] = Counter()
    for v, w in bigram_counts:
        if bigram_counts[(v, w)] > 0:
            uni_cont[w] += 1
    vocab = sorted({w for _, w in bigram_counts} | {bos})

    d3 = _discount(trigrams.values())
    d2 = _discount(c for c in bigram_counts.values() if c > 0)
    d1 = _discount(c for w, c in uni_cont.items())

    # Unigrams: discounted continuation counts interpolated with a uniform distribution.
    total_uni = sum(uni_cont.values())
    n_words = len(vocab) - 1  # <s> is never predicted
    p1: dict[str, float] = {}
    for w in vocab:
        if w == bos:
            continue
        p1[w] = max(uni_cont[w] - d1, 0.0) / total_uni + (d1 * len(uni_cont) / total_uni) / n_words

    # Bigrams.
    hist2_total: Counter[str] = Counter()
    hist2_types: Counter[str] = Counter()
    for (v, _w), c in bigram_counts.items():
        if c > 0:
            hist2_total[v] += c
            hist2_types[v] += 1
    gamma2 = {v: d2 * hist2_types[v] / hist2_total[v] for v in hist2_total}
    p2: dict[tuple[str, str], float] = {}
    for (v, w), c in bigram_counts.items():
        if c <= 0:
            continue
        p2[(v, w)] = max(c - d2, 0.0) / hist2_total[v] + gamma2[v] * p1[w]

    # Trigrams.
    hist3_total: Counter[tuple[str, str]] = Counter()
    hist3_types: Counter[tuple[str, str]] = Counter()
    for (u, v, _w), c in trigrams.items():
        hist3_total[(u, v)] += c
        hist3_types[(u, v)] += 1
    gamma3 = {h: d3 * hist3_types[h] / hist3_total[h] for h in hist3_total}
    p3: dict[tuple[str, str, str], float] = {}
    for (u, v, w), c in trigrams.items():
        lower = p2.get((v, w))
        if lower is None:
            lower = gamma2.get(v, 1.0) * p1[w]
        p3[(u, v, w)] = max(c - d3, 0.0) / hist3_total[(u, v)] + gamma3[(u, v)] * lower
    p1[bos] = 0.0
    return _NGramModel(p1=p1, p2=p2, p3=p3, bow1=gamma2, bow2=gamma3)


def _render_arpa(model: _NGramModel) -> str:
    """ARPA text of ``model`` (every trigram's history and lower bigram must be explicit)."""

    def lg(x: float) -> str:
        return f"{math.log10(x):.6f}" if x > 0 else "-99.000000"

    vocab = sorted(model.p1)
    p2, p3 = model.p2, model.p3
    lines = ["\\data\\", f"ngram 1={len(vocab)}", f"ngram 2={len(p2)}", f"ngram 3={len(p3)}", "", "\\1-grams:"]
    for w in vocab:
        prob = "-99.000000" if w == "<s>" else lg(model.p1[w])
        bow = model.bow1.get(w)
        lines.append(f"{prob}\t{w}" + (f"\t{lg(bow)}" if bow is not None and w != "</s>" else ""))
    lines += ["", "\\2-grams:"]
    for (v, w), p in sorted(p2.items()):
        bow3 = model.bow2.get((v, w))
        lines.append(f"{lg(p)}\t{v} {w}" + (f"\t{lg(bow3)}" if bow3 is not None else ""))
    lines += ["", "\\3-grams:"]
    for (u, v, w), p in sorted(p3.items()):
        lines.append(f"{lg(p)}\t{u} {v} {w}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class GeneralLM:
    """A general English trigram model read from pocketsphinx's binary trie format, as arrays.

    Probabilities and back-off weights are log10. Word ids index ``words``; each bigram is ``(b1[i], b2[i])``
    and each trigram ``(t1[i], t2[i], t3[i])`` in reading order (history first).
    """

    words: tuple[str, ...]
    unigram: npt.NDArray[np.float64]
    unigram_bow: npt.NDArray[np.float64]
    b1: npt.NDArray[np.int64]
    b2: npt.NDArray[np.int64]
    bigram: npt.NDArray[np.float64]
    bigram_bow: npt.NDArray[np.float64]
    t1: npt.NDArray[np.int64]
    t2: npt.NDArray[np.int64]
    t3: npt.NDArray[np.int64]
    trigram: npt.NDArray[np.float64]
    digest: str


_TRIE_HEADER = b"Trie Language Model"
_LOG10_OF_LOGMATH = math.log10(1.0001)  # the trie stores log base 1.0001 (pocketsphinx's default logmath)


def _bits_for(max_value: int) -> int:
    return max(1, int(max_value).bit_length())


@functools.lru_cache(maxsize=4)
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """A content hash of a model file (cached per path, size and modification time)."""
    del size, mtime_ns  # the cache key only
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def general_lm_digest(path: Path = GENERAL_LM_PATH) -> str:
    """The general model's content hash, part of the domain model's cache key."""
    stat = path.stat()
    return _file_digest(path, stat.st_size, stat.st_mtime_ns)


def read_general_lm(path: Path = GENERAL_LM_PATH) -> GeneralLM:
    """Read a pocketsphinx ``lm.bin`` trigram model (the KenLM-style reversed trie of ``lm_trie.c``).

    pocketsphinx 5.1.1 cannot convert its own ``en-us.lm.bin`` to ARPA (its header declares six bigrams more
    than the trie holds and the writer crashes), so the trie is read here: a header, the 16-bit quantisation
    tables, the unigram array ``(prob, backoff, next)`` and bit-packed records (bigrams: word, 16-bit prob and
    16-bit backoff codes, next pointer; trigrams: word, 16-bit prob code), then the words. The trie is stored
    by last word: a unigram's children are the words before it. About a second and 120 MB while building;
    not kept afterwards (a server rebuilds rarely).
    """
    data = path.read_bytes()
    if not data.startswith(_TRIE_HEADER):
        raise ValueError(f"{path} is not a pocketsphinx trie language model")
    off = len(_TRIE_HEADER)
    order = data[off]
    off += 1
    if order != 3:
        raise ValueError(f"{path} is an order-{order} model; a trigram model is needed")
    counts = struct.unpack_from("<3I", data, off)
    off += 12 + 4  # counts, then the former quantisation type
    table = 1 << 16
    quant = np.frombuffer(data, "<f4", 3 * table, off).astype(np.float64) * _LOG10_OF_LOGMATH
    off += 3 * table * 4
    n1 = counts[0]
    ug = np.frombuffer(data, np.dtype([("prob", "<f4"), ("bo", "<f4"), ("next", "<u4")]), n1 + 1, off)
    off += 12 * (n1 + 1)
    word_bits, next_bits = _bits_for(n1), _bits_for(counts[2])
    mid_bits, long_bits = word_bits + 32 + next_bits, word_bits + 16
    mid_off = off
    long_off = mid_off + ((1 + counts[1]) * mid_bits + 7) // 8 + 8
    words_off = long_off + ((1 + counts[2]) * long_bits + 7) // 8 + 8
    (size,) = struct.unpack_from("<I", data, words_off)
    words = tuple(w.decode("utf-8") for w in data[words_off + 4 : words_off + 4 + size].split(b"\0")[:n1])
    raw = np.frombuffer(data, np.uint8)

    def field_at(base: int, bit: npt.NDArray[np.uint64], width: int) -> npt.NDArray[np.int64]:
        byte = (bit >> np.uint64(3)).astype(np.int64) + base
        value = np.zeros(len(bit), np.uint64)
        for i in range(8):  # little-endian 64-bit read at any bit offset, as bitarr.c does
            value |= raw[byte + i].astype(np.uint64) << np.uint64(8 * i)
        value >>= bit & np.uint64(7)
        return (value & np.uint64((1 << width) - 1)).astype(np.int64)

    n2 = int(ug["next"][n1])
    at = np.arange(n2 + 1, dtype=np.uint64) * np.uint64(mid_bits)
    prev = field_at(mid_off, at, word_bits)[:n2]
    codes = field_at(mid_off, at + np.uint64(word_bits), 32)[:n2]
    nxt = field_at(mid_off, at + np.uint64(word_bits + 32), next_bits)
    n3 = int(nxt[n2])
    at3 = np.arange(n3, dtype=np.uint64) * np.uint64(long_bits)
    first = field_at(long_off, at3, word_bits)
    tri_codes = field_at(long_off, at3 + np.uint64(word_bits), 16)
    unigram_next: npt.NDArray[np.int64] = ug["next"].astype(np.int64)
    last = np.repeat(np.arange(n1, dtype=np.int64), np.diff(unigram_next))  # bigram → its last word
    parent = np.repeat(np.arange(n2, dtype=np.int64), np.diff(nxt))  # trigram → its (middle, last) bigram
    digest = general_lm_digest(path)
    return GeneralLM(
        words=words,
        unigram=ug["prob"][:n1].astype(np.float64) * _LOG10_OF_LOGMATH,
        unigram_bow=ug["bo"][:n1].astype(np.float64) * _LOG10_OF_LOGMATH,
        b1=prev,
        b2=last,
        bigram=quant[codes >> 16],
        bigram_bow=quant[table + (codes & 0xFFFF)],
        t1=first,
        t2=prev[parent],
        t3=last[parent],
        trigram=quant[2 * table + tri_codes],
        digest=digest,
    )


def _general_model(general: GeneralLM, vocab: set[str], *, min_bigram: float, min_trigram: float) -> _NGramModel:
    """The general model restricted to ``vocab``: unigrams renormalised, bigrams and trigrams pruned."""
    keep = np.fromiter((w in vocab or w in ("<s>", "</s>") for w in general.words), bool, len(general.words))
    words = general.words
    uni = np.where(keep, 10.0**general.unigram, 0.0)
    uni[words.index("<s>")] = 0.0
    total = float(uni.sum())
    p1 = {words[i]: float(uni[i]) / total for i in np.flatnonzero(keep)}
    bow1 = {words[i]: float(10.0 ** general.unigram_bow[i]) for i in np.flatnonzero(keep)}
    in_v2 = keep[general.b1] & keep[general.b2]
    b_keep = in_v2 & (general.bigram >= min_bigram)
    p2 = {
        (words[a], words[b]): float(10.0**p)
        for a, b, p in zip(general.b1[b_keep], general.b2[b_keep], general.bigram[b_keep], strict=True)
    }
    bow2_mask = in_v2 & (general.bigram_bow != 0.0)
    bow2 = {
        (words[a], words[b]): float(10.0**bo)
        for a, b, bo in zip(general.b1[bow2_mask], general.b2[bow2_mask], general.bigram_bow[bow2_mask], strict=True)
    }
    t_keep = keep[general.t1] & keep[general.t2] & keep[general.t3] & (general.trigram >= min_trigram)
    p3 = {
        (words[a], words[b], words[c]): float(10.0**p)
        for a, b, c, p in zip(
            general.t1[t_keep], general.t2[t_keep], general.t3[t_keep], general.trigram[t_keep], strict=True
        )
    }
    return _NGramModel(p1=p1, p2=p2, p3=p3, bow1=bow1, bow2=bow2)


def _interpolate(kb: _NGramModel, general: _NGramModel, general_weight: float) -> _NGramModel:
    """Linear interpolation in ARPA form, as SRILM's ``-mix-lm`` writes it.

    Every n-gram of either model is explicit, with ``λ·P_kb + (1-λ)·P_general`` (each model backing off as it
    does on its own); each history's back-off weight is recomputed so its distribution sums to one. The
    general model's pruned mass goes to the back-off and so to the mixed lower order.
    """
    lam = 1.0 - general_weight
    vocab = set(kb.p1) | set(general.p1)
    p1 = {w: lam * kb.p1.get(w, 0.0) + general_weight * general.p1.get(w, 0.0) for w in vocab}
    p1["<s>"] = 0.0
    p2 = {
        (v, w): lam * kb.bigram(v, w) + general_weight * general.bigram(v, w)
        for (v, w) in set(kb.p2) | set(general.p2)
        if w in vocab and w != "<s>"
    }
    p3_keys = {g for g in set(kb.p3) | set(general.p3) if g[2] != "<s>"}
    # ARPA back-off needs each trigram's history and its lower bigram to be explicit.
    for u, v, w in p3_keys:
        for gram in ((u, v), (v, w)):
            if gram not in p2:
                p2[gram] = lam * kb.bigram(*gram) + general_weight * general.bigram(*gram)
    p3 = {(u, v, w): lam * kb.trigram(u, v, w) + general_weight * general.trigram(u, v, w) for u, v, w in p3_keys}

    def backoffs(
        explicit: Iterable[tuple[tuple[str, ...], float]], lower: dict[tuple[str, ...], float]
    ) -> dict[tuple[str, ...], float]:
        mass: defaultdict[tuple[str, ...], float] = defaultdict(float)
        lower_mass: defaultdict[tuple[str, ...], float] = defaultdict(float)
        for gram, p in explicit:
            mass[gram[:-1]] += p
            lower_mass[gram[:-1]] += lower[gram]
        return {h: max(1e-12, 1.0 - mass[h]) / max(1e-12, 1.0 - lower_mass[h]) for h in mass}

    bow1_t = backoffs((((v, w), p) for (v, w), p in p2.items()), {(v, w): p1[w] for (v, w) in p2})
    mixed = _NGramModel(p1=p1, p2=p2, p3=p3, bow1={h[0]: b for h, b in bow1_t.items()})
    lower3 = {(u, v, w): mixed.bigram(v, w) for (u, v, w) in p3}
    bow2_t = backoffs(((g, p) for g, p in p3.items()), dict(lower3))  # type: ignore[arg-type]
    mixed.bow2 = {(h[0], h[1]): b for h, b in bow2_t.items()}
    for v in {v for v, _ in p2}:  # a history with no explicit continuation backs off with weight one
        mixed.bow1.setdefault(v, 1.0)
    return mixed


def build_domain_lm(
    corpus_text: str,
    models_dir: Path,
    *,
    caller_phrases: Sequence[str] = CALLER_PHRASES,
    phrase_weight: int = 3,
    general_weight: float = GENERAL_WEIGHT,
    general_words: int = GENERAL_WORDS,
    general_lm: Path = GENERAL_LM_PATH,
    pronunciations: dict[str, list[str]] | None = None,
    name: str = "domain",
) -> DomainLM:
    """Build (or reuse) the domain trigram LM and dictionary for ``corpus_text``.

    Args:
        corpus_text: The knowledge base's text (all documents, any formatting; headings help).
        models_dir: Directory the files go to (``<name>-<hash>.lm`` and ``.dict``); created if missing.
        caller_phrases: The requests the product acts on and common question openings, mixed into the corpus.
        phrase_weight: How many times each caller phrase is counted.
        general_weight: The general English model's share (1 - λ) in the interpolation; 0 builds the
            knowledge-base model alone.
        general_words: How many of the general model's most frequent words join the vocabulary.
        general_lm: The general model (a pocketsphinx ``lm.bin`` trigram trie); pocketsphinx's own by default.
        pronunciations: A CMU-format dictionary (word → pronunciations); pocketsphinx's by default.
        name: File name prefix.

    Returns:
        The built model. Files of an unchanged corpus are reused, so calling this on every knowledge-base
        change is cheap when nothing changed.

    This is CPU work (a few seconds, most of it interpolating with the general model): call it off the
    event loop.
    """
    if not 0.0 <= general_weight < 1.0:
        raise ValueError("general_weight must be in [0, 1)")
    use_general = general_weight > 0.0
    digest = hashlib.sha256()
    digest.update(corpus_text.encode("utf-8"))
    digest.update("\n".join(caller_phrases).encode("utf-8"))
    digest.update(str(phrase_weight).encode())
    if use_general:
        settings = (
            general_lm_digest(general_lm),
            general_weight,
            general_words,
            MIN_GENERAL_BIGRAM,
            MIN_GENERAL_TRIGRAM,
        )
        digest.update(repr(settings).encode())
    corpus_hash = digest.hexdigest()[:16]
    models_dir.mkdir(parents=True, exist_ok=True)
    lm_path = models_dir / f"{name}-{corpus_hash}.lm"
    dict_path = models_dir / f"{name}-{corpus_hash}.dict"

    prons = pronunciations if pronunciations is not None else load_pronunciations()
    vocab = set(prons)
    phrase_sentences = [s for p in caller_phrases for s in tokenise_sentences(p)]
    sentences, oov = _fragments([*tokenise_sentences(corpus_text), *(phrase_sentences * phrase_weight)], vocab)
    if not sentences:
        raise ValueError("the corpus has no words with a known pronunciation")
    words = {w for s in sentences for w in s}
    built = lm_path.exists() and dict_path.exists()
    general = read_general_lm(general_lm) if use_general and not built else None
    if general is not None:
        ranked = np.argsort(-general.unigram, kind="stable")
        frequent = (general.words[i] for i in ranked if general.words[i] in vocab)
        words |= {w for w, _ in zip(frequent, range(general_words), strict=False)}
    elif built:
        words = {line.split(" ", 1)[0].split("(", 1)[0] for line in dict_path.read_text("utf-8").splitlines()}

    if not built:
        model = _kneser_ney(sentences)
        if general is not None:
            restricted = _general_model(general, words, min_bigram=MIN_GENERAL_BIGRAM, min_trigram=MIN_GENERAL_TRIGRAM)
            model = _interpolate(model, restricted, general_weight)
        arpa = _render_arpa(model)
        dict_lines = []
        for word in sorted(w for w in model.p1 if w not in ("<s>", "</s>")):
            for i, phones in enumerate(prons[word]):
                dict_lines.append(f"{word}{'' if i == 0 else f'({i + 1})'} {phones}")
        tmp_lm = lm_path.with_suffix(".lm.tmp")
        tmp_dict = dict_path.with_suffix(".dict.tmp")
        tmp_lm.write_text(arpa, encoding="utf-8")
        tmp_dict.write_text("\n".join(dict_lines) + "\n", encoding="utf-8")
        tmp_dict.replace(dict_path)
        tmp_lm.replace(lm_path)
    return DomainLM(
        lm_path=lm_path,
        dict_path=dict_path,
        corpus_hash=corpus_hash,
        vocabulary_size=len(words),
        sentences=len(sentences),
        oov_tokens=oov,
    )
