"""Knowledge-base benchmark: retrieval quality on the labelled eval set, latency at scale, ingestion throughput.

Prints one JSON object. Run::

    .venv/bin/python -m benchmarks.retrieval                 # everything (a few minutes on 2 cores)
    .venv/bin/python -m benchmarks.retrieval --scales 1000   # quicker

What is measured, and how:

- **Quality** (``quality``): the 17 demo documents (``demo/knowledge``) are parsed, chunked and embedded exactly
  as the server does; each of the 112 answerable questions (``benchmarks/kb/questions.jsonl``) counts as found
  at rank *r* when the *r*-th passage comes from the labelled document and contains the labelled evidence.
  recall@1, recall@5, MRR (over the top 5), the share of answerable questions above the threshold, and the
  share of the 20 unanswerable questions correctly below it. The threshold (0.47, ``knowledge.score_threshold``)
  was chosen on this same set (there is no held-out split); ``threshold_sweep`` shows its neighbours.
- **Plain words** (``quality_plain_words``): the same measures on ``benchmarks/kb/plain_words_dev.jsonl`` (55
  answerable + 12 unanswerable questions in a caller's own words, the development set for the sentence views of
  :mod:`knowledge.views`), and ``calibrated``: both sets with the threshold the base derives for itself
  (:mod:`knowledge.calibration`, as the server runs), with each set's per-question retrieval latency (p50/p95,
  query embedding included). ``--no-views`` measures the plain hybrid search instead (the "before");
  ``views_latency_interleaved_ms``: the team's questions with and without views in turn, one process, so that a
  busy machine weighs on both alike.
- **Latency** (``latency``): the demo chunks plus synthetic filler chunks up to 1 000 / 10 000 / 100 000.
  Filler vectors are random unit vectors and filler texts random words from the demo vocabulary plus
  made-up words (embedding 100 000 texts with MiniLM takes too long on 2 cores); every timed query embeds
  the real question with MiniLM, then runs the full hybrid search (HNSW + BM25 + fusion + scoring). Warm,
  one at a time, and 8 at once (``asyncio.gather``: per-query latency). ``vector_only`` compares the graph
  search with numpy brute force over the same vectors (why the store is HNSW).
- **Embedder** (``embedder``): one short question, onnxruntime vs torch, both single-threaded.
- **Ingestion** (``ingestion``): the demo corpus through the isolated parser (a child process per document,
  as the server runs it), embedding and the store. A page is a PDF page, or 3 000 characters of another format.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import resource
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from knowledge.calibration import all_chunks, fingerprint
from knowledge.embedders.minilm import MiniLMEmbedder, default_model_dir
from knowledge.ingest import prepare, prepare_isolated
from knowledge.kb import KnowledgeBase
from knowledge.retrieval import HybridRetriever, RetrievalConfig
from knowledge.stores.embedded import EmbeddedStore
from knowledge.types import StoredChunk

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "knowledge"
EVAL = ROOT / "benchmarks" / "kb"
THRESHOLD = 0.47
CHUNK_TOKENS, CHUNK_OVERLAP = 180, 30


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def load_eval() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The answerable and unanswerable questions."""
    answerable = [json.loads(line) for line in (EVAL / "questions.jsonl").read_text().splitlines() if line.strip()]
    unanswerable = [json.loads(line) for line in (EVAL / "unanswerable.jsonl").read_text().splitlines() if line.strip()]
    return answerable, unanswerable


def load_plain_words() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The plain-words development set: answerable (with a ``document``) and unanswerable questions."""
    rows = [json.loads(line) for line in (EVAL / "plain_words_dev.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if "document" in r], [r for r in rows if "document" not in r]


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return round(ordered[index], 3)


async def build_demo_kb(
    embedder: MiniLMEmbedder,
    *,
    threshold: float = THRESHOLD,
    store: EmbeddedStore | None = None,
    views: bool = True,
) -> KnowledgeBase:
    """The demo documents in an in-memory store (document id = file name), with the sentence views unless off."""
    store = store or EmbeddedStore(dimension=embedder.dimension)
    retriever = HybridRetriever(
        embedder=embedder, store=store, config=RetrievalConfig(score_threshold=threshold, views=views)
    )
    kb = KnowledgeBase(embedder=embedder, store=store, retriever=retriever)
    for path in sorted(DEMO.iterdir()):
        prepared = prepare(
            path.read_bytes(), name_hint=path.name, max_tokens=CHUNK_TOKENS, overlap_tokens=CHUNK_OVERLAP
        )
        title = prepared.title or path.name
        await store.add(await kb.embed_chunks(path.name, f"{title} ({path.name})", prepared.chunks))
    chunks = await all_chunks(store)
    await retriever.build_views(chunks, fingerprint(chunks, embedder.model_id))
    return kb


def _rank(question: dict[str, Any], passages: Sequence[Any]) -> int | None:
    targets = [
        (question["document"], question["evidence"]),
        *((a["document"], a["evidence"]) for a in question.get("also", ())),
    ]
    for rank, passage in enumerate(passages, start=1):
        if any(passage.document_id == doc and _norm(ev) in _norm(passage.text) for doc, ev in targets):
            return rank
    return None


@dataclass
class Quality:
    """Eval-set metrics."""

    recall_at_1: float
    recall_at_5: float
    mrr: float
    answerable_found: float
    not_found_accuracy: float
    threshold: float
    sweep: dict[str, dict[str, float]]
    misses: list[dict[str, Any]]
    recall_at_3: float = 0.0
    latency_ms: dict[str, float] | None = None


async def evaluate(
    kb: KnowledgeBase,
    *,
    threshold: float = THRESHOLD,
    questions: tuple[list[dict[str, Any]], list[dict[str, Any]]] | None = None,
) -> Quality:
    """Run the eval set (or ``questions``: answerable, unanswerable) against ``kb``."""
    answerable, unanswerable = questions or load_eval()
    ranks: list[int | None] = []
    tops: list[float] = []
    misses: list[dict[str, Any]] = []
    latencies: list[float] = []
    for question in answerable:
        retrieval = await kb.retrieve(question["question"], top_k=5)
        latencies.append(retrieval.latency_ms)
        rank = _rank(question, retrieval.passages)
        ranks.append(rank)
        tops.append(retrieval.top_score or 0.0)
        if rank != 1:
            misses.append(
                {
                    "id": question["id"],
                    "rank": rank,
                    "expected": question["document"],
                    "got": [p.document_id for p in retrieval.passages[:3]],
                }
            )
    unanswered_tops = [(await kb.retrieve(q["question"], top_k=5)).top_score or 0.0 for q in unanswerable]
    n = len(answerable)
    sweep = {
        f"{t:.2f}": {
            "answerable_found": round(sum(s >= t for s in tops) / n, 3),
            "not_found_accuracy": round(sum(s < t for s in unanswered_tops) / len(unanswered_tops), 3),
        }
        for t in (0.40, 0.43, 0.45, 0.47, 0.50, 0.55)
    }
    return Quality(
        recall_at_1=round(sum(r == 1 for r in ranks) / n, 3),
        recall_at_5=round(sum(r is not None for r in ranks) / n, 3),
        mrr=round(sum(1 / r for r in ranks if r) / n, 3),
        answerable_found=round(sum(s >= threshold for s in tops) / n, 3),
        not_found_accuracy=round(sum(s < threshold for s in unanswered_tops) / len(unanswered_tops), 3),
        threshold=threshold,
        sweep=sweep,
        misses=misses,
        recall_at_3=round(sum(r is not None and r <= 3 for r in ranks) / n, 3),
        latency_ms={"p50": _percentile(latencies, 50), "p95": _percentile(latencies, 95)},
    )


async def interleaved_latency(kb: KnowledgeBase, *, rounds: int = 3) -> dict[str, Any]:
    """Retrieval latency with and without the sentence views, question by question in turn (same load for both)."""
    questions = [q["question"] for q in load_eval()[0]]
    views = kb.retriever.views
    samples: dict[str, list[float]] = {"plain": [], "views": []}
    for _ in range(rounds):
        for question in questions:
            for name in ("plain", "views"):
                kb.retriever.views = views if name == "views" else None
                samples[name].append((await kb.retrieve(question, top_k=5)).latency_ms)
    kb.retriever.views = views
    return {
        name: {"p50": _percentile(xs, 50), "p95": _percentile(xs, 95), "n": len(xs)} for name, xs in samples.items()
    }


async def calibrated_quality(embedder: MiniLMEmbedder, *, views: bool) -> dict[str, Any]:
    """Both sets with the threshold the demo base derives for itself (as the server runs it)."""
    import tempfile

    kb = await build_demo_kb(embedder, views=views)
    with tempfile.TemporaryDirectory() as tmp:
        calibration = await kb.retriever.enable_calibration(Path(tmp))
    out: dict[str, Any] = {"threshold": calibration.threshold, "views": kb.retriever.views is not None}
    for name, questions in (("team", load_eval()), ("plain_words_dev", load_plain_words())):
        q = await evaluate(kb, threshold=calibration.threshold, questions=questions)
        out[name] = {
            "recall_at_1": q.recall_at_1,
            "recall_at_3": q.recall_at_3,
            "answerable_found": q.answerable_found,
            "not_found_accuracy": q.not_found_accuracy,
            "latency_ms": q.latency_ms,
        }
    return out


def _filler(count: int, dimension: int, vocabulary: list[str], seed: int = 7) -> list[StoredChunk]:
    rng = np.random.default_rng(seed)
    words = random.Random(seed)
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(vocabulary))]
    chunks = []
    for i in range(count):
        text = " ".join(words.choices(vocabulary, weights=weights, k=90))
        chunks.append(
            StoredChunk(
                id=f"filler-{i // 20}:{i % 20}",
                document_id=f"filler-{i // 20}",
                seq=i % 20,
                text=text,
                vector=tuple(vectors[i].tolist()),
                title=f"Synthetic document {i // 20}",
            )
        )
    return chunks


async def _timed(kb: KnowledgeBase, questions: list[str], *, rounds: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    for i in range(rounds):
        batch = [questions[(i * concurrency + j) % len(questions)] for j in range(concurrency)]
        results = await asyncio.gather(*(kb.retrieve(q, top_k=5) for q in batch))
        latencies.extend(r.latency_ms for r in results)
    return latencies


async def latency(
    embedder: MiniLMEmbedder,
    scales: Sequence[int],
    queries: int,
    *,
    cache_dir: Path | None = None,
    views: bool = True,
) -> dict[str, Any]:
    """Hybrid retrieval latency (query embedding included) at each scale.

    The filled stores are kept under ``cache_dir`` (``benchmarks/out/cache``) and reused by later runs: building
    the 100 000-chunk graph takes minutes on 2 cores. They are index snapshots: the chunks themselves are
    generated again each run (same seed) and handed to :meth:`EmbeddedStore.restore`, as the server hands it
    the database's chunks.
    """
    answerable, _ = load_eval()
    questions = [q["question"] for q in answerable]
    base = await build_demo_kb(embedder)
    real = await base.store.get([f"{p.name}:{i}" for p in sorted(DEMO.iterdir()) for i in range(40)])
    vocabulary = sorted({w for c in real for w in re.findall(r"[a-z]+", c.text.lower())})
    vocabulary += [f"w{i:05d}" for i in range(20000)]
    out: dict[str, Any] = {}
    for scale in scales:
        path = cache_dir / f"scale-{scale}-{embedder.model_id.replace('/', '_')}" if cache_dir else None
        filler_count = max(0, scale - len(real))
        filler = _filler(filler_count, embedder.dimension, vocabulary)
        started = time.perf_counter()
        store = EmbeddedStore(
            dimension=embedder.dimension, path=path, inline_rebuild_limit=10**9, model_id=embedder.model_id
        )
        # As the server starts: the store restores its index from the chunks (here: the demo's plus the filler),
        # reusing the snapshot a previous run left under the cache directory when it holds exactly these.
        restored = await store.restore([*real, *filler])
        reused = restored.added == 0
        build_s = time.perf_counter() - started
        retriever = HybridRetriever(
            embedder=embedder, store=store, config=RetrievalConfig(score_threshold=THRESHOLD, views=views)
        )
        # As the server does with the calibration: the sentence views, on a base small enough for them.
        await retriever.build_views([*real, *filler], f"bench-{scale}")
        kb = KnowledgeBase(embedder=embedder, store=store, retriever=retriever)
        await _timed(kb, questions, rounds=20, concurrency=1)  # warm
        single = await _timed(kb, questions, rounds=queries, concurrency=1)
        concurrent = await _timed(kb, questions, rounds=max(1, queries // 8), concurrency=8)
        quality = await evaluate(kb)
        matrix = np.asarray([c.vector for c in filler[:scale]] or [[0.0] * embedder.dimension], dtype=np.float32)
        query_vectors = embedder.encode(questions[:50])
        brute, graph = [], []
        for vector in query_vectors:
            t0 = time.perf_counter()
            scores = matrix @ vector
            top = np.argpartition(-scores, min(49, len(scores) - 1))[:50]
            _ = top[np.argsort(-scores[top])]
            brute.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            store.vector_search_sync(vector, 50)
            graph.append((time.perf_counter() - t0) * 1000)
        out[str(scale)] = {
            "chunks": await store.count(),
            "build_s": round(build_s, 1),
            "reused_from_cache": reused,
            "sentence_views": len(retriever.views) if retriever.views is not None else 0,
            "one_at_a_time_ms": {"p50": _percentile(single, 50), "p95": _percentile(single, 95), "n": len(single)},
            "concurrent_8_ms": {
                "p50": _percentile(concurrent, 50),
                "p95": _percentile(concurrent, 95),
                "n": len(concurrent),
            },
            "vector_only_ms": {
                "hnsw_p50": _percentile(graph, 50),
                "hnsw_p95": _percentile(graph, 95),
                "numpy_brute_force_p50": _percentile(brute, 50),
                "numpy_brute_force_p95": _percentile(brute, 95),
            },
            "eval_with_filler": {"recall_at_1": quality.recall_at_1, "recall_at_5": quality.recall_at_5},
        }
        await store.close()
    return out


def embedder_comparison(onnx: MiniLMEmbedder, *, with_torch: bool) -> dict[str, Any]:
    """Single-question embedding latency: onnxruntime vs torch."""
    question = "How long do I have to return the router after cancelling?"
    result: dict[str, Any] = {}
    for name, encode in [("onnxruntime", onnx.encode)] + (
        [("torch", MiniLMEmbedder(backend="torch").encode)] if with_torch else []
    ):
        for _ in range(10):
            encode([question])
        samples = []
        for _ in range(100):
            t0 = time.perf_counter()
            encode([question])
            samples.append((time.perf_counter() - t0) * 1000)
        result[name] = {"p50_ms": _percentile(samples, 50), "p95_ms": _percentile(samples, 95)}
    result["max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return result


async def ingestion(embedder: MiniLMEmbedder) -> dict[str, Any]:
    """Throughput of the server's ingestion path over the demo corpus."""
    store = EmbeddedStore(dimension=embedder.dimension)
    retriever = HybridRetriever(embedder=embedder, store=store)
    kb = KnowledgeBase(embedder=embedder, store=store, retriever=retriever)
    pages = chunks = 0
    started = time.perf_counter()
    for path in sorted(DEMO.iterdir()):
        prepared = await prepare_isolated(
            path.read_bytes(), name_hint=path.name, max_tokens=CHUNK_TOKENS, overlap_tokens=CHUNK_OVERLAP
        )
        chars = sum(len(c.text) for c in prepared.chunks)
        pages += prepared.pages or max(1, math.ceil(chars / 3000))
        stored = await kb.embed_chunks(path.name, prepared.title, prepared.chunks)
        await store.add(stored)
        chunks += len(stored)
    elapsed = time.perf_counter() - started
    documents = len(list(DEMO.iterdir()))
    return {
        "documents": documents,
        "pages": pages,
        "chunks": chunks,
        "seconds": round(elapsed, 2),
        "pages_per_s": round(pages / elapsed, 2),
        "documents_per_s": round(documents / elapsed, 2),
        "chunks_per_s": round(chunks / elapsed, 1),
    }


async def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and return the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", default="1000,10000,100000", help="Comma-separated chunk counts.")
    parser.add_argument("--queries", type=int, default=200, help="Timed queries per scale (one at a time).")
    parser.add_argument("--no-torch", action="store_true", help="Skip the torch embedder comparison.")
    parser.add_argument("--models-dir", type=Path, default=ROOT / "data" / "models", help="ONNX export cache.")
    parser.add_argument(
        "--cache-dir", type=Path, default=ROOT / "benchmarks" / "out" / "cache", help="Filled stores kept between runs."
    )
    parser.add_argument("--only-latency", action="store_true", help="Skip the ingestion and embedder sections.")
    parser.add_argument("--only-quality", action="store_true", help="The quality sections only (a minute).")
    parser.add_argument("--no-views", action="store_true", help="The plain hybrid search (no sentence views).")
    args = parser.parse_args(argv)
    embedder = MiniLMEmbedder(model_dir=default_model_dir(), cache_dir=args.models_dir)
    await embedder.warm()
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "embedder_backend": embedder.backend,
    }
    views = not args.no_views
    demo = await build_demo_kb(embedder, views=views)
    quality = await evaluate(demo)
    report["quality"] = quality.__dict__
    report["quality_plain_words"] = (await evaluate(demo, questions=load_plain_words())).__dict__
    report["calibrated"] = await calibrated_quality(embedder, views=views)
    if demo.retriever.views is not None:
        report["views_latency_interleaved_ms"] = await interleaved_latency(demo)
    if args.only_quality:
        return report
    if not args.only_latency:
        report["ingestion"] = await ingestion(embedder)
        report["embedder"] = embedder_comparison(embedder, with_torch=not args.no_torch)
    report["latency"] = await latency(
        embedder, [int(s) for s in args.scales.split(",") if s], args.queries, cache_dir=args.cache_dir, views=views
    )
    report["targets"] = {
        "recall_at_5>=0.95": quality.recall_at_5 >= 0.95,
        "recall_at_1>=0.80": quality.recall_at_1 >= 0.80,
        "not_found>=0.85": quality.not_found_accuracy >= 0.85,
        "p95_at_100k<=15ms": report["latency"].get("100000", {}).get("one_at_a_time_ms", {}).get("p95", math.inf)
        <= 15.0,
    }
    return report


if __name__ == "__main__":
    import structlog

    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))  # stdout carries only the JSON
    result = asyncio.run(main())
    text = json.dumps(result, indent=2)
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "retrieval.json").write_text(text)
    print(text)
