"""The brain's sentence choice on the development sets, on the passages as stored and on longer ones (issue 16 item 5).

The demo base's sections are short (a median of 3 sentences, 49 words), so a run of up to three sentences holds
the answer of almost any right passage, and the development sets cannot tell one sentence rule from another.
Other companies write longer sections (the held-out water utility's median is 73 words). To measure the choice
where it matters without looking at a held-out set, each development question whose right passage the retriever
finds first is also asked of that passage merged with its neighbours in the same document (the passage and the
next one, the previous one and the passage, all three), each sentence keeping the closeness to the question the
retriever gives it (``Passage.closeness``, from the base's sentence views). A right answer holds the question's
key phrase, as ``benchmarks.heldout_eval`` scores typed answers.

Sets: ``benchmarks/kb/questions.jsonl`` (team), ``plain_words_dev.jsonl``, ``sentence_dev.jsonl``; demo base only;
the held-out sets are never read here. Run::

    .venv/bin/python -m benchmarks.sentence_choice                       # the shipped weight and none
    .venv/bin/python -m benchmarks.sentence_choice --weights 0,2,4,6,8,10,16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.heldout_eval import Question
from benchmarks.notfound_dev import dev_sets
from benchmarks.product_kb import cites, demo_data_dir, open_knowledge
from control_api.logging_setup import configure_logging
from knowledge import calibration as calib
from knowledge.types import StoredChunk
from knowledge.views import ViewIndex, passage_body
from pipelines.brain.extractive import MEANING_WEIGHT, best_sentences
from pipelines.contracts import Passage

Case = tuple[str, Question, dict[str, tuple[str, tuple[tuple[str, float], ...]]]]


def _holds(q: Question, text: str) -> bool:
    return any(k["expect"].lower() in text.lower() for k in q.keys)


async def cases() -> list[Case]:
    """Each development question whose right passage is found first, with its passage alone and merged."""
    out: list[Case] = []
    with tempfile.TemporaryDirectory(prefix="sentence-choice-") as tmp:
        settings = await demo_data_dir(Path(tmp) / "data")
        async with open_knowledge(settings) as kb:
            retriever = kb.service.kb.retriever
            views = retriever.views
            if views is None:
                raise SystemExit("the demo base has no sentence views")
            by_doc: dict[str, dict[int, StoredChunk]] = {}
            for chunk in await calib.all_chunks(retriever.store):
                by_doc.setdefault(chunk.document_id, {})[chunk.seq] = chunk
            for name, questions in dev_sets().items():
                for q in questions:
                    if not q.answerable:
                        continue
                    found = await kb.retriever.retrieve(q.text, top_k=1, log=False)
                    top = found.passages[0] if found.found and found.passages else None
                    if top is None or not any(cites(top.citation, k["document"]) for k in q.keys):
                        continue
                    if not _holds(q, top.body):
                        continue
                    query = np.asarray((await retriever.embedder.embed_array([q.text]))[0], dtype=np.float32)
                    out.append((name, q, _variants(views, by_doc, top, query)))
    return out


def _variants(
    views: ViewIndex,
    by_doc: dict[str, dict[int, StoredChunk]],
    top: Passage,
    query: npt.NDArray[np.float32],
) -> dict[str, tuple[str, tuple[tuple[str, float], ...]]]:
    doc = by_doc[top.document_id]
    seq = next(c.seq for c in doc.values() if c.id == top.chunk_id)

    def part(chunk: StoredChunk) -> tuple[str, tuple[tuple[str, float], ...]]:
        return passage_body(chunk), views.closeness(chunk.id, query)

    own = (top.body, top.closeness)
    prev, nxt = doc.get(seq - 1), doc.get(seq + 1)
    variants = {"own": own}

    def joined(*parts: tuple[str, tuple[tuple[str, float], ...]]) -> tuple[str, tuple[tuple[str, float], ...]]:
        return "\n\n".join(p[0] for p in parts), tuple(pair for p in parts for pair in p[1])

    if nxt is not None:
        variants["own+next"] = joined(own, part(nxt))
    if prev is not None:
        variants["prev+own"] = joined(part(prev), own)
    if prev is not None and nxt is not None:
        variants["prev+own+next"] = joined(part(prev), own, part(nxt))
    return variants


def measure(all_cases: Sequence[Case], weight: float) -> dict[str, Any]:
    """Right answers per passage shape (and per set on the passages as stored) at one ``meaning_weight``."""
    right: dict[str, list[bool]] = {}
    words: list[int] = []
    changed = 0  # passages as stored whose answer differs from the choice by words alone
    for name, q, variants in all_cases:
        for shape, (body, closeness) in variants.items():
            said = best_sentences(q.text, body, closeness=closeness, meaning_weight=weight)
            right.setdefault(shape, []).append(_holds(q, said))
            if shape == "own":
                right.setdefault(f"own/{name}", []).append(_holds(q, said))
                changed += said != best_sentences(q.text, body)
            words.append(len(said.split()))
    return {
        "right_answer": {k: f"{sum(v)}/{len(v)}" for k, v in right.items()},
        "right_answer_share": {k: round(sum(v) / len(v), 3) for k, v in right.items() if "/" not in k},
        "words_mean": round(statistics.fmean(words or [0]), 1),
        "own_answers_changed": changed,
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, measure each weight, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=f"0,{MEANING_WEIGHT:g}", help="Comma-separated meaning weights.")
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")
    all_cases = asyncio.run(cases())
    report = {
        "benchmark": "sentence_choice",
        "shipped_weight": MEANING_WEIGHT,
        "questions": len(all_cases),
        "weights": {w: measure(all_cases, float(w)) for w in args.weights.split(",")},
    }
    print(json.dumps(report, indent=1), file=sys.stdout)


if __name__ == "__main__":
    main()
