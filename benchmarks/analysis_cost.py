"""Cost of post-call analysis and of knowledge-gap clustering; prints JSON.

1. **CPU time per call analysed**: ``--calls`` calls are stored on the demo knowledge base (the product's stack,
   ``benchmarks.product_kb``), each with two to four caller questions from ``benchmarks/kb`` (answerable ones
   answered with the real retrieval's citations, unanswerable ones not), ended through ``services.calls.end_call``
   (which queues the analysis), then the shipped ``AnalysisWorker`` drains the queue. Reported: process CPU time
   and wall time per call (summary, outcome, topics with retrieval for unanswered questions, sentiment, fields,
   gap intake with embedding, the ``call.analysed`` event), on SQLite.
2. **Gap clustering at 100 000 logged questions**: ``learning.cluster`` (the batch form of the intake rule) on
   SYNTHETIC unit vectors: ``--clusters`` random centres in the embedder's 384 dimensions, each question a centre
   plus Gaussian noise scaled so paraphrases sit near cosine 0.8 from their centre. The vectors are synthetic
   because embedding 100 000 real questions would time the embedder, not the clustering; the embedder's own
   cost per question is measured separately on real sentences and reported beside it.

Run: ``.venv/bin/python -m benchmarks.analysis_cost [--calls 40] [--questions 100000] [--clusters 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.product_kb import demo_data_dir, open_knowledge
from control_api.db.engine import create_engine
from control_api.db.migrate import upgrade
from control_api.services import calls as calls_service
from control_api.services import learning
from control_api.services.analysis_jobs import AnalysisWorker

KB = Path(__file__).parent / "kb"


def _questions() -> tuple[list[str], list[str]]:
    def read(name: str) -> list[str]:
        return [json.loads(line)["question"] for line in (KB / name).read_text().splitlines() if line.strip()]

    return read("questions.jsonl"), read("unanswerable.jsonl")


async def analysis_cost(calls: int, seed: int) -> dict[str, Any]:
    """Store ``calls`` calls, end them, and time the worker analysing them all."""
    rng = random.Random(seed)
    answerable, unanswerable = _questions()
    with tempfile.TemporaryDirectory(prefix="voxdesk-analysis-bench-") as tmp:
        settings = await demo_data_dir(Path(tmp) / "data")
        engine = create_engine(settings.database_url)
        await upgrade(engine)  # the cached demo database may predate this code's migrations
        await engine.dispose()
        async with open_knowledge(settings) as kb:
            questions_total = 0
            for _ in range(calls):
                async with kb.sessions() as session:
                    call = await calls_service.create_call(session, channel="websocket", status="active")
                    seq = 0
                    for _ in range(rng.randint(2, 4)):
                        pool = unanswerable if rng.random() < 0.25 else answerable
                        question = rng.choice(pool)
                        found = await kb.service.retrieve(question, call_id=call.id)
                        await calls_service.append_turn(session, call.id, seq=seq, role="caller", text=question)
                        top = found.passages[0] if found.found and found.passages else None
                        answer = top.text[:300] if top else "I'm sorry, I could not find that in our knowledge base."
                        await calls_service.append_turn(
                            session,
                            call.id,
                            seq=seq + 1,
                            role="agent",
                            text=answer,
                            citations=[top.chunk_id] if top else [],
                        )
                        seq += 2
                        questions_total += 1
                    await calls_service.end_call(session, call.id, reason="caller_hangup")
            worker = AnalysisWorker(sessions=kb.sessions, knowledge=lambda: kb.service, settle=timedelta(0))
            await worker.run_one(call.id)  # warm-up: first embedder and retrieval calls pay one-off costs
            cpu0, wall0 = time.process_time(), time.perf_counter()
            await worker.drain()
            cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
            async with kb.sessions() as session:
                gaps = await learning.list_gaps(session, status=None, limit=500)
    return {
        "calls": calls,
        "questions": questions_total,
        "cpu_ms_per_call": round(cpu / calls * 1000, 2),
        "wall_ms_per_call": round(wall / calls * 1000, 2),
        "gaps_formed": len(gaps),
        "database": "sqlite",
    }


async def embed_cost(sentences: int, seed: int) -> dict[str, Any]:
    """The embedder's cost per question (real sentences, batches of 64), to put the synthetic timing in context."""
    rng = random.Random(seed)
    answerable, unanswerable = _questions()
    texts = [rng.choice(answerable + unanswerable) + f" ({i})" for i in range(sentences)]
    with tempfile.TemporaryDirectory(prefix="voxdesk-analysis-bench-") as tmp:
        settings = await demo_data_dir(Path(tmp) / "data")
        async with open_knowledge(settings) as kb:
            await kb.embedder.embed_array(texts[:8])
            start = time.perf_counter()
            for i in range(0, len(texts), 64):
                await kb.embedder.embed_array(texts[i : i + 64])
            elapsed = time.perf_counter() - start
    return {"sentences": sentences, "ms_per_question": round(elapsed / sentences * 1000, 3)}


def clustering_cost(questions: int, clusters: int, similarity: float, seed: int) -> dict[str, Any]:
    """Time ``learning.cluster`` on ``questions`` synthetic 384-d unit vectors around ``clusters`` centres."""
    rng = np.random.default_rng(seed)
    dim = 384
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = rng.integers(0, clusters, size=questions)
    # Noise of norm ~0.75 around a unit centre puts a question near cosine 0.8 from its centre (paraphrases).
    noise = rng.standard_normal((questions, dim)).astype(np.float32) * (0.75 / np.sqrt(dim))
    vectors = centres[truth] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    start = time.perf_counter()
    labels, found, _ = learning.cluster(vectors, similarity)
    elapsed = time.perf_counter() - start
    # Purity: the share of questions whose cluster's majority true centre is their own.
    majority: dict[int, int] = {}
    for label in np.unique(labels):
        majority[int(label)] = int(np.bincount(truth[labels == label]).argmax())
    purity = float(np.mean([majority[int(lab)] == int(t) for lab, t in zip(labels, truth, strict=True)]))
    return {
        "questions": questions,
        "true_clusters": clusters,
        "clusters_found": len(found),
        "purity": round(purity, 4),
        "similarity": similarity,
        "seconds": round(elapsed, 3),
        "vectors": "synthetic (see the module docstring)",
    }


def main() -> None:
    """Run both measurements and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--questions", type=int, default=100_000)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--similarity", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    result = {
        "analysis": asyncio.run(analysis_cost(args.calls, args.seed)),
        "embedding": asyncio.run(embed_cost(256, args.seed)),
        "clustering": clustering_cost(args.questions, args.clusters, args.similarity, args.seed),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
