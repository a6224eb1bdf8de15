"""Honest "not found" on the development sets, typed, through the server's retriever (issue 16).

The same measure as ``benchmarks.heldout_eval --typed-only`` (right passage first: found and the top passage
from the keyed document holding the key; honest "not found": ``found`` false on an unanswerable question), on
the team's own development sets only: ``benchmarks/kb/questions.jsonl`` + ``unanswerable.jsonl`` (112 + 20),
``benchmarks/kb/plain_words_dev.jsonl`` (55 + 12) and ``sentence_dev.jsonl`` (45 answers past a section's first
sentence: the brain's sentence choice, ``right_answer``), demo knowledge base. The held-out sets are never read here.
Each set is measured twice on one ingested base: ``with_check`` as the server runs, ``without_check`` with the
answerability check of :mod:`knowledge.answerability` off (the "before"; the ingested base's scores vary by about
0.01 from one ingestion to the next, so before and after are compared on the same one). Run::

    .venv/bin/python -m benchmarks.notfound_dev            # figures (JSON)
    .venv/bin/python -m benchmarks.notfound_dev --detail   # and each question's top passage and score
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.heldout_eval import Question, typed
from benchmarks.product_kb import demo_data_dir, open_knowledge
from control_api.logging_setup import configure_logging

KB = Path(__file__).resolve().parent / "kb"


def _rows(name: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (KB / name).read_text(encoding="utf-8").splitlines() if line.strip()]


def _question(row: dict[str, Any]) -> Question:
    keys: list[dict[str, Any]] = []
    if "document" in row:
        keys.append({"document": row["document"], "heading": None, "expect": row["evidence"]})
        keys += [{"document": a["document"], "heading": None, "expect": a["evidence"]} for a in row.get("also", ())]
    return Question(row["id"], row["question"], tuple(keys))


def dev_sets() -> dict[str, list[Question]]:
    """The development sets: the team's labelled questions and the plain-words set."""
    return {
        "team_kb": [_question(r) for r in _rows("questions.jsonl") + _rows("unanswerable.jsonl")],
        "plain_words_dev": [_question(r) for r in _rows("plain_words_dev.jsonl")],
        "sentence_dev": [_question(r) for r in _rows("sentence_dev.jsonl")],
    }


async def run(detail: bool) -> dict[str, Any]:
    """Measure both sets on a fresh copy of the ingested demo base."""
    out: dict[str, Any] = {"benchmark": "notfound_dev", "typed": {}}
    with tempfile.TemporaryDirectory(prefix="notfound-dev-") as tmp:
        settings = await demo_data_dir(Path(tmp) / "data")
        async with open_knowledge(settings) as kb:
            retriever = kb.service.kb.retriever
            check = retriever.answerability
            out["threshold"] = retriever.config.score_threshold
            for name, qs in dev_sets().items():
                for label, answerability in (("without_check", None), ("with_check", check)):
                    retriever.answerability = answerability
                    figures = await typed(kb, qs)
                    yes = [q for q in qs if q.answerable]
                    results = [await kb.retriever.retrieve(q.text, top_k=1, log=False) for q in qs]
                    found = [r.found for q, r in zip(qs, results, strict=True) if q.answerable]
                    figures["answerable_found"] = round(sum(found) / max(1, len(yes)), 3)
                    latency = sorted(r.latency_ms for r in results)
                    figures["latency_ms_p50_p95"] = [
                        round(latency[len(latency) // 2], 1),
                        round(latency[min(len(latency) - 1, int(0.95 * len(latency)))], 1),
                    ]
                    out["typed"][f"{name}/{label}"] = figures
                if detail:
                    rows = []
                    for q in qs:
                        r = await kb.retriever.retrieve(q.text, top_k=1, log=False)
                        top = r.passages[0] if r.passages else None
                        rows.append(
                            {
                                "id": q.id,
                                "answerable": q.answerable,
                                "found": r.found,
                                "score": top.score if top else None,
                                "citation": top.citation if top else None,
                            }
                        )
                    out.setdefault("detail", {})[name] = rows
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """Parse arguments, run, print the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detail", action="store_true", help="Each question's top passage and score.")
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")
    print(json.dumps(asyncio.run(run(args.detail)), indent=1), file=sys.stdout)


if __name__ == "__main__":
    main()
