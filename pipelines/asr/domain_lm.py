"""A domain language model for pocketsphinx, built from knowledge-base text.

The model is a trigram ARPA file with interpolated Kneser-Ney smoothing (Chen & Goodman 1998, with one
absolute discount per order estimated as ``D = n1 / (n1 + 2 n2)``), written together with a
pronunciation dictionary restricted to its vocabulary (taken from pocketsphinx's CMU dictionary).
A small vocabulary makes the decoder both faster and more accurate on the knowledge base's words.

The corpus is the knowledge-base text plus common caller phrasing (questions, requests, yes/no,
backchannels), so that both the questions and the answers' words are likely. Files are named by a hash
of the corpus: rebuilding with an unchanged knowledge base is a no-op.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pocketsphinx import get_model_path

__all__ = [
    "CALLER_PHRASES",
    "DomainLM",
    "build_domain_lm",
    "load_pronunciations",
    "normalise_text",
    "tokenise_sentences",
]

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


def _kneser_ney_arpa(sentences: Sequence[list[str]]) -> tuple[str, int]:
    """Estimate an interpolated Kneser-Ney trigram model and render it as ARPA text."""
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

    def lg(x: float) -> str:
        return f"{math.log10(x):.6f}" if x > 0 else "-99.000000"

    lines = ["\\data\\", f"ngram 1={len(vocab)}", f"ngram 2={len(p2)}", f"ngram 3={len(p3)}", "", "\\1-grams:"]
    for w in vocab:
        prob = "-99.000000" if w == bos else lg(p1[w])
        bow = gamma2.get(w)
        lines.append(f"{prob}\t{w}" + (f"\t{lg(bow)}" if bow is not None and w != eos else ""))
    lines += ["", "\\2-grams:"]
    for (v, w), p in sorted(p2.items()):
        bow3 = gamma3.get((v, w))
        lines.append(f"{lg(p)}\t{v} {w}" + (f"\t{lg(bow3)}" if bow3 is not None else ""))
    lines += ["", "\\3-grams:"]
    for (u, v, w), p in sorted(p3.items()):
        lines.append(f"{lg(p)}\t{u} {v} {w}")
    lines += ["", "\\end\\", ""]
    return "\n".join(lines), len(vocab)


def build_domain_lm(
    corpus_text: str,
    models_dir: Path,
    *,
    caller_phrases: Sequence[str] = CALLER_PHRASES,
    phrase_weight: int = 3,
    pronunciations: dict[str, list[str]] | None = None,
    name: str = "domain",
) -> DomainLM:
    """Build (or reuse) the domain trigram LM and dictionary for ``corpus_text``.

    Args:
        corpus_text: The knowledge base's text (all documents, any formatting; headings help).
        models_dir: Directory the files go to (``<name>-<hash>.lm`` and ``.dict``); created if missing.
        caller_phrases: Typical caller phrasing mixed into the corpus.
        phrase_weight: How many times each caller phrase is counted.
        pronunciations: A CMU-format dictionary (word → pronunciations); pocketsphinx's by default.
        name: File name prefix.

    Returns:
        The built model. Files of an unchanged corpus are reused, so calling this on every knowledge-base
        change is cheap when nothing changed.

    This is CPU work (a second or two for a large knowledge base): call it off the event loop.
    """
    digest = hashlib.sha256()
    digest.update(corpus_text.encode("utf-8"))
    digest.update("\n".join(caller_phrases).encode("utf-8"))
    digest.update(str(phrase_weight).encode())
    corpus_hash = digest.hexdigest()[:16]
    models_dir.mkdir(parents=True, exist_ok=True)
    lm_path = models_dir / f"{name}-{corpus_hash}.lm"
    dict_path = models_dir / f"{name}-{corpus_hash}.dict"

    prons = pronunciations if pronunciations is not None else load_pronunciations()
    vocab = set(prons)
    kb_sentences = tokenise_sentences(corpus_text)
    phrase_sentences = [s for p in caller_phrases for s in tokenise_sentences(p)]
    sentences, oov = _fragments([*kb_sentences, *(phrase_sentences * phrase_weight)], vocab)
    if not sentences:
        raise ValueError("the corpus has no words with a known pronunciation")

    if not (lm_path.exists() and dict_path.exists()):
        arpa, _ = _kneser_ney_arpa(sentences)
        words = sorted({w for s in sentences for w in s})
        dict_lines = []
        for word in words:
            for i, phones in enumerate(prons[word]):
                dict_lines.append(f"{word}{'' if i == 0 else f'({i + 1})'} {phones}")
        tmp_lm = lm_path.with_suffix(".lm.tmp")
        tmp_dict = dict_path.with_suffix(".dict.tmp")
        tmp_lm.write_text(arpa, encoding="utf-8")
        tmp_dict.write_text("\n".join(dict_lines) + "\n", encoding="utf-8")
        tmp_dict.replace(dict_path)
        tmp_lm.replace(lm_path)
    vocabulary_size = len({w for s in sentences for w in s})
    return DomainLM(
        lm_path=lm_path,
        dict_path=dict_path,
        corpus_hash=corpus_hash,
        vocabulary_size=vocabulary_size,
        sentences=len(sentences),
        oov_tokens=oov,
    )
