"""The default vector store: needs no server. HNSW (hnswlib) for vectors, BM25 (bm25s) for keywords.

Chosen by measurement on this 2-core machine (``benchmarks/retrieval.py``, ENVIRONMENT.md): at 100 000 chunks
of 384-d, numpy brute force takes ~8-40 ms per query, hnswlib ~0.5 ms; SQLite FTS5 keyword queries with
OR-ed terms ~14 ms p50 / 86 ms p95, bm25s ~1 ms.

Persistence (under ``path``): ``chunks.sqlite3`` is the durable record of every chunk (text, citation fields,
vector) and is written in one transaction per call; ``vectors.hnsw`` is a snapshot of the graph tagged with
the SQLite write generation. On open, a snapshot whose generation differs (a crash between the two writes) is
discarded and the graph is rebuilt from the SQLite vectors, so the store survives kill -9. The BM25 index is
rebuilt from the chunk texts after each write (inline up to ``inline_rebuild_limit`` chunks, in a background
thread above that: keyword results then lag a write by seconds while vector results are immediate) and saved
under ``bm25/`` with its generation, so a restart loads it instead of re-tokenising every chunk.

Thread safety: one lock serialises writes and graph access; searches run in worker threads.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import bm25s
import hnswlib
import numpy as np
import numpy.typing as npt
import structlog

from knowledge.errors import StoreError
from knowledge.stores.base import VectorStore
from knowledge.text_tokens import keyword_tokens
from knowledge.types import Hit, StoredChunk

log = structlog.get_logger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS chunks (
    label INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    document_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    title TEXT,
    heading TEXT,
    page INTEGER,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_chunks_document ON chunks(document_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class _Keyword:
    """An immutable BM25 snapshot: the index and the chunk label of each of its rows."""

    def __init__(self, labels: list[int], corpus: list[list[str]], generation: int = -1) -> None:
        self.labels = np.asarray(labels, dtype=np.int64)
        self.generation = generation
        self.index: bm25s.BM25 | None = None
        self.vocab: set[str] = set()
        if labels:
            index = bm25s.BM25()
            index.index(corpus, show_progress=False)
            self.index = index
            self.vocab = set(index.vocab_dict)

    def save(self, directory: Path) -> None:
        """Write the index, its labels and its generation into ``directory`` (replaced atomically)."""
        tmp = directory.with_name(directory.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        if self.index is not None:
            self.index.save(str(tmp))
        np.save(tmp / "labels.npy", self.labels)
        (tmp / "generation.json").write_text(json.dumps({"generation": self.generation, "count": len(self.labels)}))
        old = directory.with_name(directory.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, directory: Path, generation: int, count: int) -> _Keyword | None:
        """The saved index if it was built at ``generation`` over ``count`` chunks, else None."""
        try:
            info = json.loads((directory / "generation.json").read_text())
            if info.get("generation") != generation or info.get("count") != count:
                return None
            keyword = cls([], [], generation)
            keyword.labels = np.load(directory / "labels.npy")
            if count:
                keyword.index = bm25s.BM25.load(str(directory))
                keyword.vocab = set(keyword.index.vocab_dict)
            return keyword
        except (OSError, ValueError, KeyError):
            return None

    def search(self, tokens: list[str], top_k: int) -> list[tuple[int, float]]:
        if self.index is None:
            return []
        known = [t for t in tokens if t in self.vocab]
        if not known:
            return []
        scores = np.asarray(self.index.get_scores(known), dtype=np.float32)
        k = min(top_k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(self.labels[i]), float(scores[i])) for i in top if scores[i] > 0]


class EmbeddedStore(VectorStore):
    """HNSW + BM25 in process, persisted under ``path`` (in memory only when ``path`` is None).

    Args:
        dimension: Vector length.
        path: Directory for the store's files, e.g. ``<data_dir>/knowledge/embedded``.
        ef_search: HNSW search breadth (higher: better recall, slower).
        m: HNSW graph degree.
        ef_construction: HNSW build breadth.
        inline_rebuild_limit: Up to this many chunks the BM25 index and graph snapshot are refreshed inside
            each write; above it, in a background thread.
        model_id: The embedding model's id. A store written by another model (or dimension) is emptied on
            open and ``needs_reindex`` is set, so the documents are embedded again.

    """

    name = "embedded"

    def __init__(
        self,
        *,
        dimension: int,
        path: Path | None = None,
        ef_search: int = 64,
        m: int = 16,
        ef_construction: int = 128,
        inline_rebuild_limit: int = 20000,
        model_id: str | None = None,
    ) -> None:
        self.dimension = dimension
        self.model_id = model_id
        self.path = path
        self._ef_search = ef_search
        self._m = m
        self._ef_construction = ef_construction
        self._inline_limit = inline_rebuild_limit
        self._lock = threading.RLock()
        self._rows: dict[int, StoredChunk] = {}
        self._labels: dict[str, int] = {}
        self._by_doc: dict[str, set[int]] = {}
        self._tokens: dict[int, list[str]] = {}  # BM25 tokens per label: a rebuild tokenises only new chunks
        self._keyword = _Keyword([], [])
        self._refresh_thread: threading.Thread | None = None
        self._refresh_again = False
        self._generation = 0
        self._saved_generation = -1
        self._closed = False
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path / "chunks.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        else:
            self._db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
        self._db.executescript(_SCHEMA)
        self._index = self._new_index(1024)
        self._load()

    @classmethod
    def from_options(
        cls, *, dimension: int, path: Path | None, url: str | None, api_key: str | None, model_id: str | None = None
    ) -> EmbeddedStore:
        """Build from settings values (``url`` and ``api_key`` are for server stores and ignored here)."""
        return cls(dimension=dimension, path=path, model_id=model_id)

    # -- lifecycle -------------------------------------------------------------------------------------------

    def _new_index(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="ip", dim=self.dimension)
        index.init_index(
            max_elements=capacity, ef_construction=self._ef_construction, M=self._m, allow_replace_deleted=True
        )
        index.set_ef(self._ef_search)
        index.set_num_threads(1)
        return index

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _load(self) -> None:
        stored_dim, stored_model = self._meta("dimension"), self._meta("model")
        changed = (stored_dim is not None and int(stored_dim) != self.dimension) or (
            self.model_id is not None and stored_model is not None and stored_model != self.model_id
        )
        if changed:
            # Vectors of another model are meaningless to this one: start empty and ask for re-indexing.
            log.warning("knowledge_store_model_changed", old_model=stored_model, new_model=self.model_id)
            self._db.execute("DELETE FROM chunks")
            self.needs_reindex = True
            snapshot = self._snapshot_path()
            if snapshot is not None:
                snapshot.unlink(missing_ok=True)
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('dimension', ?)", (str(self.dimension),))
        if self.model_id is not None:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('model', ?)", (self.model_id,))
        self._generation = int(self._meta("generation") or 0)
        labels: list[int] = []
        vectors: list[bytes] = []
        for label, cid, doc, seq, text, title, heading, page, blob in self._db.execute(
            "SELECT label, id, document_id, seq, text, title, heading, page, vector FROM chunks ORDER BY label"
        ):
            self._remember(
                StoredChunk(id=cid, document_id=doc, seq=seq, text=text, title=title, heading=heading, page=page), label
            )
            labels.append(label)
            vectors.append(blob)
        snapshot = self._snapshot_path()
        loaded = False
        if snapshot is not None and snapshot.exists() and labels:
            try:
                info = json.loads(snapshot.with_suffix(".json").read_text())
                if info.get("generation") == self._generation and info.get("count") == len(labels):
                    index = hnswlib.Index(space="ip", dim=self.dimension)
                    index.load_index(str(snapshot), max_elements=max(1024, len(labels) * 2), allow_replace_deleted=True)
                    index.set_ef(self._ef_search)
                    index.set_num_threads(1)
                    self._index = index
                    self._saved_generation = self._generation
                    loaded = True
            except (OSError, ValueError, RuntimeError) as exc:
                log.warning("knowledge_store_snapshot_unreadable", error=str(exc)[:200])
        if not loaded and labels:
            log.info("knowledge_store_rebuilding_graph", chunks=len(labels))
            self._index = self._new_index(max(1024, len(labels) * 2))
            matrix = np.frombuffer(b"".join(vectors), dtype=np.float32).reshape(len(labels), self.dimension)
            self._index.set_num_threads(max(1, (os.cpu_count() or 1)))
            self._index.add_items(matrix, np.asarray(labels, dtype=np.int64))
            self._index.set_num_threads(1)
            self._save_snapshot()
        keyword = _Keyword.load(self.path / "bm25", self._generation, len(labels)) if self.path is not None else None
        if keyword is not None:
            self._keyword = keyword
        else:
            self._refresh_keyword()
            self._save_keyword()

    def _save_keyword(self) -> None:
        if self.path is None:
            return
        keyword = self._keyword
        if keyword.generation == self._generation:
            keyword.save(self.path / "bm25")

    def _snapshot_path(self) -> Path | None:
        return self.path / "vectors.hnsw" if self.path is not None else None

    def _save_snapshot(self) -> None:
        snapshot = self._snapshot_path()
        if snapshot is None or self._saved_generation == self._generation:
            return
        with self._lock:
            generation, count = self._generation, len(self._rows)
            tmp = snapshot.with_suffix(".hnsw.tmp")
            self._index.save_index(str(tmp))
        os.replace(tmp, snapshot)
        sidecar = snapshot.with_suffix(".json")
        sidecar.with_suffix(".json.tmp").write_text(json.dumps({"generation": generation, "count": count}))
        os.replace(sidecar.with_suffix(".json.tmp"), sidecar)
        self._saved_generation = generation

    def _remember(self, chunk: StoredChunk, label: int) -> None:
        self._rows[label] = chunk
        self._labels[chunk.id] = label
        self._by_doc.setdefault(chunk.document_id, set()).add(label)

    def _forget(self, label: int) -> None:
        self._tokens.pop(label, None)
        chunk = self._rows.pop(label)
        self._labels.pop(chunk.id, None)
        labels = self._by_doc.get(chunk.document_id)
        if labels is not None:
            labels.discard(label)
            if not labels:
                del self._by_doc[chunk.document_id]
        self._index.mark_deleted(label)

    def _refresh_keyword(self) -> None:
        with self._lock:
            items = sorted(self._rows.items())
            cached = dict(self._tokens)
            generation = self._generation
        corpus = []
        for label, chunk in items:
            tokens = cached.get(label)
            if tokens is None:
                tokens = keyword_tokens(" ".join(filter(None, (chunk.title, chunk.text))))
                cached[label] = tokens
            corpus.append(tokens)
        with self._lock:
            for label, _ in items:
                if label in self._rows:
                    self._tokens[label] = cached[label]
        self._keyword = _Keyword([label for label, _ in items], corpus, generation)

    def _background_refresh(self) -> None:
        while True:
            self._refresh_again = False
            try:
                self._refresh_keyword()
                self._save_snapshot()
                self._save_keyword()
            except (OSError, RuntimeError, ValueError) as exc:  # a failed refresh leaves the last good snapshot
                log.warning("knowledge_store_refresh_failed", error=str(exc)[:200])
            with self._lock:
                if not self._refresh_again:
                    self._refresh_thread = None
                    return

    def _after_write(self) -> None:
        if len(self._rows) <= self._inline_limit:
            self._refresh_keyword()
            self._save_snapshot()
            self._save_keyword()
            return
        with self._lock:
            if self._refresh_thread is not None:
                self._refresh_again = True
                return
            self._refresh_thread = threading.Thread(
                target=self._background_refresh, name="kb-store-refresh", daemon=True
            )
            self._refresh_thread.start()

    # -- writes ----------------------------------------------------------------------------------------------

    def _bump_generation(self) -> None:
        self._generation += 1
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('generation', ?)", (str(self._generation),))

    def add_sync(self, chunks: Sequence[StoredChunk]) -> None:
        """Blocking :meth:`add`."""
        if not chunks:
            return
        matrix = np.asarray([c.vector for c in chunks], dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dimension:
            raise StoreError(f"Vectors must be {self.dimension}-d.", retryable=False)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                stale = [self._labels[c.id] for c in chunks if c.id in self._labels]
                self._db.executemany("DELETE FROM chunks WHERE id = ?", [(c.id,) for c in chunks])
                labels: list[int] = []
                for chunk, vector in zip(chunks, matrix, strict=True):
                    cursor = self._db.execute(
                        "INSERT INTO chunks(id, document_id, seq, text, title, heading, page, vector) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (
                            chunk.id,
                            chunk.document_id,
                            chunk.seq,
                            chunk.text,
                            chunk.title,
                            chunk.heading,
                            chunk.page,
                            vector.tobytes(),
                        ),
                    )
                    labels.append(int(cursor.lastrowid or 0))
                self._bump_generation()
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise StoreError(f"The knowledge store could not be written: {exc}") from exc
            for label in stale:
                self._forget(label)
            needed = self._index.get_current_count() + len(labels)
            if needed > self._index.get_max_elements():
                self._index.resize_index(max(needed, self._index.get_max_elements() * 2))
            self._index.add_items(matrix, np.asarray(labels, dtype=np.int64), replace_deleted=True)
            for chunk, label in zip(chunks, labels, strict=True):
                self._remember(replace(chunk, vector=()), label)
        self._after_write()

    async def add(self, chunks: Sequence[StoredChunk]) -> None:
        """Add or replace chunks."""
        await asyncio.to_thread(self.add_sync, chunks)

    def delete_document_sync(self, document_id: str) -> int:
        """Blocking :meth:`delete_document`."""
        with self._lock:
            labels = list(self._by_doc.get(document_id, ()))
            if not labels:
                return 0
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("DELETE FROM chunks WHERE document_id = ?", (document_id,))
            self._bump_generation()
            self._db.execute("COMMIT")
            for label in labels:
                self._forget(label)
        self._after_write()
        return len(labels)

    async def delete_document(self, document_id: str) -> int:
        """Remove a document's chunks."""
        return await asyncio.to_thread(self.delete_document_sync, document_id)

    async def clear(self) -> None:
        """Remove every chunk."""

        def run() -> None:
            with self._lock:
                self._db.execute("DELETE FROM chunks")
                self._bump_generation()
                self._rows.clear()
                self._labels.clear()
                self._by_doc.clear()
                self._index = self._new_index(1024)
            self._after_write()

        await asyncio.to_thread(run)

    # -- reads -----------------------------------------------------------------------------------------------

    async def get(self, chunk_ids: Sequence[str]) -> list[StoredChunk]:
        """Chunks by id, with vectors."""

        def run() -> list[StoredChunk]:
            with self._lock:
                found = [(self._labels[c], self._rows[self._labels[c]]) for c in chunk_ids if c in self._labels]
                if not found:
                    return []
                vectors = self._index.get_items([label for label, _ in found], return_type="numpy")
            return [
                replace(chunk, vector=tuple(float(x) for x in v)) for (_, chunk), v in zip(found, vectors, strict=True)
            ]

        return await asyncio.to_thread(run)

    async def count(self, document_id: str | None = None) -> int:
        """Chunks in the store, or of one document."""
        with self._lock:
            if document_id is None:
                return len(self._rows)
            return len(self._by_doc.get(document_id, ()))

    def document_counts_sync(self) -> dict[str, int]:
        """Blocking :meth:`document_counts`."""
        with self._lock:
            return {doc: len(labels) for doc, labels in self._by_doc.items()}

    async def document_counts(self) -> Mapping[str, int]:
        """Chunks per document."""
        return self.document_counts_sync()

    def vector_search_sync(self, vector: npt.NDArray[np.float32], top_k: int) -> list[Hit]:
        """Blocking :meth:`vector_search`."""
        with self._lock:
            live = len(self._rows)
            if live == 0:
                return []
            k = min(top_k, live)
            query = np.asarray(vector, dtype=np.float32).reshape(1, -1)
            self._index.set_ef(max(self._ef_search, k))
            try:
                labels, distances = self._index.knn_query(query, k=k)
            except RuntimeError:
                # After many deletions the graph may not yield k live neighbours at this breadth: widen it.
                self._index.set_ef(max(self._ef_search, live, k))
                labels, distances = self._index.knn_query(query, k=k)
            rows = self._rows
            return [
                Hit(chunk=rows[int(label)], score=1.0 - float(dist), vector_score=1.0 - float(dist))
                for label, dist in zip(labels[0], distances[0], strict=True)
                if int(label) in rows
            ]

    async def vector_search(self, vector: npt.NDArray[np.float32], *, top_k: int) -> list[Hit]:
        """Nearest chunks by cosine."""
        return await asyncio.to_thread(self.vector_search_sync, vector, top_k)

    def keyword_search_sync(self, text: str, top_k: int) -> list[Hit]:
        """Blocking :meth:`keyword_search`."""
        snapshot = self._keyword
        results = snapshot.search(keyword_tokens(text), top_k)
        rows = self._rows
        return [Hit(chunk=rows[label], score=score) for label, score in results if label in rows]

    async def keyword_search(self, text: str, *, top_k: int) -> list[Hit]:
        """Best chunks by BM25."""
        return await asyncio.to_thread(self.keyword_search_sync, text, top_k)

    def hybrid_search_sync(
        self, text: str, vector: npt.NDArray[np.float32], top_k: int, candidates: int = 50
    ) -> list[Hit]:
        """Blocking :meth:`hybrid_search`: both searches and the fusion in one worker-thread hop."""
        from knowledge.stores.base import reciprocal_rank_fusion

        by_vector = self.vector_search_sync(vector, candidates)
        by_keyword = self.keyword_search_sync(text, candidates)
        fused = reciprocal_rank_fusion([[h.chunk.id for h in by_vector], [h.chunk.id for h in by_keyword]])
        cosine = {h.chunk.id: h.score for h in by_vector}
        chunks = {h.chunk.id: h.chunk for h in (*by_keyword, *by_vector)}
        ranked = sorted(fused, key=lambda cid: (-fused[cid], cid))[:top_k]
        missing = [cid for cid in ranked if cid not in cosine]
        if missing:
            with self._lock:
                present = [cid for cid in missing if cid in self._labels]
                if present:
                    vectors = self._index.get_items([self._labels[c] for c in present], return_type="numpy")
                    query = np.asarray(vector, dtype=np.float32)
                    for cid, v in zip(present, vectors, strict=True):
                        cosine[cid] = float(np.dot(np.asarray(v, dtype=np.float32), query))
        vector_rank = {h.chunk.id: rank for rank, h in enumerate(by_vector, start=1)}
        keyword_rank = {h.chunk.id: rank for rank, h in enumerate(by_keyword, start=1)}
        return [
            Hit(
                chunk=chunks[cid],
                score=fused[cid],
                vector_score=cosine.get(cid),
                vector_rank=vector_rank.get(cid),
                keyword_rank=keyword_rank.get(cid),
            )
            for cid in ranked
        ]

    async def hybrid_search(
        self, text: str, vector: npt.NDArray[np.float32], *, top_k: int, candidates: int = 50
    ) -> list[Hit]:
        """Vector + BM25, fused by reciprocal rank fusion, in one worker-thread hop."""
        return await asyncio.to_thread(self.hybrid_search_sync, text, vector, top_k, candidates)

    # -- durability ------------------------------------------------------------------------------------------

    def flush_sync(self) -> None:
        """Wait for a background refresh and write the graph snapshot."""
        thread = self._refresh_thread
        if thread is not None:
            thread.join()
        self._refresh_keyword()
        self._save_snapshot()
        self._save_keyword()

    async def flush(self) -> None:
        """Make every write searchable by keyword and snapshot the graph."""
        await asyncio.to_thread(self.flush_sync)

    def close_sync(self) -> None:
        """Blocking :meth:`close`."""
        if self._closed:
            return
        thread = self._refresh_thread
        if thread is not None:
            thread.join()
        self._save_snapshot()
        self._save_keyword()
        self._db.close()
        self._closed = True

    async def close(self) -> None:
        """Snapshot the graph and close the database."""
        await asyncio.to_thread(self.close_sync)
