"""The default vector store: needs no server. HNSW (hnswlib) for vectors, BM25 (bm25s) for keywords.

Chosen by measurement on this 2-core machine (``benchmarks/retrieval.py``, ENVIRONMENT.md): at 100 000 chunks
of 384-d, numpy brute force takes ~8-40 ms per query, hnswlib ~0.5 ms; SQLite FTS5 keyword queries with
OR-ed terms ~14 ms p50 / 86 ms p95, bm25s ~1 ms.

The store is an index, not a record: the application database holds every chunk (text, citation fields,
embedding) and :meth:`EmbeddedStore.restore` fills the store from it on start. What the store writes under
``path/index`` is a disposable snapshot that makes that start fast: the HNSW graph, the BM25 index, and a
manifest of the chunk id and content digest behind each graph label. A restore reuses every saved label whose
digest matches the chunk it is given, drops the others and inserts only what is new, so a snapshot that is
missing, torn (kill -9 while writing) or out of date costs graph inserts, never a wrong answer. The snapshot
directory is replaced atomically after each write (inline up to ``inline_rebuild_limit`` chunks, in a
background thread above that: keyword results then lag a write by seconds while vector results are
immediate).

Thread safety: one lock serialises writes and graph access; searches run in worker threads.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import bm25s
import hnswlib
import numpy as np
import numpy.typing as npt
import structlog

from knowledge.errors import StoreError
from knowledge.fusion import fuse, missing_cosines, with_cosines
from knowledge.stores.base import RestoreReport, VectorStore
from knowledge.text_tokens import keyword_tokens
from knowledge.types import Hit, StoredChunk

log = structlog.get_logger(__name__)

# Files of the earlier layout, which kept a second durable copy of every chunk beside the database's.
_LEGACY = ("chunks.sqlite3", "chunks.sqlite3-wal", "chunks.sqlite3-shm", "vectors.hnsw", "vectors.json", "bm25")


def chunk_digest(chunk: StoredChunk) -> bytes:
    """A 16-byte digest of everything the index derives from a chunk (text, citation fields, vector).

    ``display_title`` is left out: it is carried, not indexed, and a restore keeps the chunk it is given.
    """
    digest = hashlib.blake2b(digest_size=16)
    fields = (chunk.id, chunk.document_id, str(chunk.seq), chunk.text, chunk.title, chunk.heading, chunk.page)
    digest.update("\x1f".join("\x00" if f is None else str(f) for f in fields).encode())
    digest.update(np.asarray(chunk.vector, dtype=np.float32).tobytes())
    return digest.digest()


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
        """Write the index, its labels and its generation into the new directory ``directory``."""
        directory.mkdir(parents=True)
        if self.index is not None:
            self.index.save(str(directory))
        np.save(directory / "labels.npy", self.labels)
        (directory / "generation.json").write_text(json.dumps({"generation": self.generation}))

    @classmethod
    def load(cls, directory: Path, generation: int) -> _Keyword | None:
        """The saved index if it was built at ``generation``, else None."""
        try:
            info = json.loads((directory / "generation.json").read_text())
            if info.get("generation") != generation:
                return None
            keyword = cls([], [], generation)
            keyword.labels = np.load(directory / "labels.npy")
            if len(keyword.labels):
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


@dataclass
class _Snapshot:
    """A saved graph with the chunk id and digest behind each of its labels."""

    directory: Path
    generation: int
    index: hnswlib.Index
    labels: npt.NDArray[np.int64]
    ids: list[str]
    digests: list[bytes]


class EmbeddedStore(VectorStore):
    """HNSW + BM25 in process; with ``path``, a snapshot of the index under ``path/index`` speeds up restores.

    Args:
        dimension: Vector length.
        path: Directory for the snapshot, e.g. ``<data_dir>/knowledge/embedded``; None keeps nothing on disk.
        ef_search: HNSW search breadth (higher: better recall, slower).
        m: HNSW graph degree.
        ef_construction: HNSW build breadth.
        inline_rebuild_limit: Up to this many chunks the BM25 index and the snapshot are refreshed inside
            each write; above it, in a background thread.
        model_id: The embedding model's id. A snapshot written for another model (or dimension) is not reused.

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
        self._digests: dict[int, bytes] = {}
        self._by_doc: dict[str, set[int]] = {}
        self._tokens: dict[int, list[str]] = {}  # BM25 tokens per label: a rebuild tokenises only new chunks
        self._keyword = _Keyword([], [])
        self._next_label = 0
        self._refresh_thread: threading.Thread | None = None
        self._refresh_again = False
        self._generation = 0
        self._saved_generation = -1
        self._closed = False
        self._written = False  # once written or restored, this store's own state is what a restore compares with
        self._index = self._new_index(1024)
        if path is not None:
            path.mkdir(parents=True, exist_ok=True)
            self._remove_legacy(path)

    @classmethod
    def from_options(
        cls, *, dimension: int, path: Path | None, url: str | None, api_key: str | None, model_id: str | None = None
    ) -> EmbeddedStore:
        """Build from settings values (``url`` and ``api_key`` are for server stores and ignored here)."""
        return cls(dimension=dimension, path=path, model_id=model_id)

    # -- snapshot --------------------------------------------------------------------------------------------

    @staticmethod
    def _remove_legacy(path: Path) -> None:
        found = [path / name for name in _LEGACY if (path / name).exists()]
        if not found:
            return
        log.info("knowledge_store_legacy_files_removed", files=[p.name for p in found])
        for item in found:
            if item.is_dir():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)

    def _new_index(self, capacity: int) -> hnswlib.Index:
        index = hnswlib.Index(space="ip", dim=self.dimension)
        index.init_index(
            max_elements=capacity, ef_construction=self._ef_construction, M=self._m, allow_replace_deleted=True
        )
        index.set_ef(self._ef_search)
        index.set_num_threads(1)
        return index

    def _snapshot_dir(self) -> Path | None:
        return self.path / "index" if self.path is not None else None

    def _read_snapshot(self) -> _Snapshot | None:
        directory = self._snapshot_dir()
        if directory is None:
            return None
        if not directory.exists() and directory.with_name("index.old").exists():
            directory = directory.with_name("index.old")  # the process died between the two renames of a save
        try:
            manifest = json.loads((directory / "manifest.json").read_text())
            if manifest.get("dimension") != self.dimension or manifest.get("model") != self.model_id:
                log.info("knowledge_store_snapshot_of_another_model", model=manifest.get("model"))
                return None
            labels = np.load(directory / "labels.npy")
            digests = np.load(directory / "digests.npy")
            ids = json.loads((directory / "ids.json").read_text())
            if not len(labels) == len(digests) == len(ids) == manifest.get("count"):
                return None
            index = hnswlib.Index(space="ip", dim=self.dimension)
            index.load_index(
                str(directory / "graph.hnsw"), max_elements=max(1024, len(labels) * 2), allow_replace_deleted=True
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            log.warning("knowledge_store_snapshot_unreadable", error=str(exc)[:200])
            return None
        index.set_ef(self._ef_search)
        index.set_num_threads(1)
        return _Snapshot(
            directory=directory,
            generation=int(manifest["generation"]),
            index=index,
            labels=labels.astype(np.int64),
            ids=[str(i) for i in ids],
            digests=[bytes(d) for d in digests],
        )

    def _save_snapshot(self) -> None:
        """Replace ``path/index`` with the graph, manifest and (when current) BM25 index of this generation."""
        directory = self._snapshot_dir()
        if directory is None or self._saved_generation == self._generation:
            return
        tmp = directory.with_name("index.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        with self._lock:
            generation = self._generation
            labels = sorted(self._rows)
            ids = [self._rows[label].id for label in labels]
            digests = np.frombuffer(b"".join(self._digests[label] for label in labels), dtype=np.uint8)
            self._index.save_index(str(tmp / "graph.hnsw"))
        keyword = self._keyword
        if keyword.generation == generation:
            keyword.save(tmp / "bm25")
        np.save(tmp / "labels.npy", np.asarray(labels, dtype=np.int64))
        np.save(tmp / "digests.npy", digests.reshape(len(labels), 16))
        (tmp / "ids.json").write_text(json.dumps(ids))
        manifest = {"generation": generation, "count": len(labels), "dimension": self.dimension, "model": self.model_id}
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        old = directory.with_name("index.old")
        shutil.rmtree(old, ignore_errors=True)
        if directory.exists():
            os.replace(directory, old)
        os.replace(tmp, directory)
        shutil.rmtree(old, ignore_errors=True)
        self._saved_generation = generation

    # -- in-memory state -------------------------------------------------------------------------------------

    def _remember(self, chunk: StoredChunk, label: int, digest: bytes) -> None:
        self._rows[label] = chunk
        self._labels[chunk.id] = label
        self._digests[label] = digest
        self._by_doc.setdefault(chunk.document_id, set()).add(label)

    def _forget(self, label: int) -> None:
        self._tokens.pop(label, None)
        self._digests.pop(label, None)
        chunk = self._rows.pop(label)
        self._labels.pop(chunk.id, None)
        labels = self._by_doc.get(chunk.document_id)
        if labels is not None:
            labels.discard(label)
            if not labels:
                del self._by_doc[chunk.document_id]
        self._index.mark_deleted(label)

    def _reset(self, index: hnswlib.Index) -> None:
        self._rows.clear()
        self._labels.clear()
        self._digests.clear()
        self._by_doc.clear()
        self._tokens.clear()
        self._index = index
        self._next_label = 0

    def _insert(self, chunks: Sequence[StoredChunk], digests: Sequence[bytes]) -> None:
        """Put new chunks in the graph under fresh labels (the lock is held)."""
        if not chunks:
            return
        matrix = np.asarray([c.vector for c in chunks], dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.dimension:
            raise StoreError(f"Vectors must be {self.dimension}-d.", retryable=False)
        labels = np.arange(self._next_label, self._next_label + len(chunks), dtype=np.int64)
        self._next_label += len(chunks)
        needed = self._index.get_current_count() + len(chunks)
        if needed > self._index.get_max_elements():
            self._index.resize_index(max(needed, self._index.get_max_elements() * 2))
        bulk = len(chunks) >= 1000
        if bulk:
            self._index.set_num_threads(max(1, os.cpu_count() or 1))
        try:
            self._index.add_items(matrix, labels, replace_deleted=True)
        finally:
            if bulk:
                self._index.set_num_threads(1)
        for chunk, label, digest in zip(chunks, labels, digests, strict=True):
            self._remember(replace(chunk, vector=()), int(label), digest)

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
            return
        with self._lock:
            if self._refresh_thread is not None:
                self._refresh_again = True
                return
            self._refresh_thread = threading.Thread(
                target=self._background_refresh, name="kb-store-refresh", daemon=True
            )
            self._refresh_thread.start()

    def _join_refresh(self) -> None:
        thread = self._refresh_thread
        if thread is not None:
            thread.join()

    # -- writes ----------------------------------------------------------------------------------------------

    def restore_sync(self, chunks: Sequence[StoredChunk]) -> RestoreReport:
        """Blocking :meth:`restore` (``keep_documents`` does not apply: this index is this process's own)."""
        digests = [chunk_digest(c) for c in chunks]
        self._join_refresh()
        with self._lock:
            saved, tokens, snapshot = self._restore_baseline(len(chunks))
            fresh: list[StoredChunk] = []
            fresh_digests: list[bytes] = []
            removed = 0
            for chunk, digest in zip(chunks, digests, strict=True):
                kept = saved.pop(chunk.id, None)
                if kept is not None and kept[1] == digest:
                    self._remember(replace(chunk, vector=()), kept[0], digest)
                    if kept[0] in tokens:
                        self._tokens[kept[0]] = tokens[kept[0]]
                    continue
                if kept is not None:
                    self._index.mark_deleted(kept[0])
                    removed += 1
                fresh.append(chunk)
                fresh_digests.append(digest)
            for label, _ in saved.values():
                self._index.mark_deleted(label)
            removed += len(saved)
            self._insert(fresh, fresh_digests)
            changed = bool(fresh) or removed > 0
            if changed:
                self._generation += 1
            self._written = True
        if snapshot is not None and not changed:
            keyword = _Keyword.load(snapshot.directory / "bm25", self._generation)
            if keyword is not None:
                self._keyword = keyword
                self._saved_generation = self._generation
        if self._keyword.generation != self._generation:
            self._refresh_keyword()
        self._save_snapshot()
        report = RestoreReport(kept=len(self._rows) - len(fresh), added=len(fresh), removed=removed)
        log.info("knowledge_store_restored", kept=report.kept, added=report.added, removed=report.removed)
        return report

    def _restore_baseline(
        self, expected: int
    ) -> tuple[dict[str, tuple[int, bytes]], dict[int, list[str]], _Snapshot | None]:
        """What a restore compares against (the lock is held).

        That is this store's own chunks once it has been written or restored, else the saved snapshot. Returns
        ``{chunk id: (label, digest)}``, the cached BM25 tokens and the snapshot used; the bookkeeping is
        emptied and the graph kept, for the labels to reuse.
        """
        if self._written:
            saved = {chunk.id: (label, self._digests[label]) for label, chunk in self._rows.items()}
            tokens, next_label = dict(self._tokens), self._next_label
            self._reset(self._index)
            self._next_label = next_label
            return saved, tokens, None
        snapshot = self._read_snapshot()
        if snapshot is None:
            self._reset(self._new_index(max(1024, expected * 2)))
            self._generation += 1  # nothing on disk describes this store yet
            return {}, {}, None
        self._reset(snapshot.index)
        self._next_label = int(snapshot.labels.max()) + 1 if len(snapshot.labels) else 0
        self._generation = snapshot.generation
        saved = dict(zip(snapshot.ids, zip(snapshot.labels.tolist(), snapshot.digests, strict=True), strict=True))
        return saved, {}, snapshot

    async def restore(self, chunks: Sequence[StoredChunk], *, keep_documents: Collection[str] = ()) -> RestoreReport:
        """Hold exactly ``chunks``, reusing the saved graph for every chunk that has not changed.

        ``keep_documents`` does not apply: the index is this process's own, and the snapshot has no text to
        keep a document's chunks with.
        """
        return await asyncio.to_thread(self.restore_sync, chunks)

    def add_sync(self, chunks: Sequence[StoredChunk]) -> None:
        """Blocking :meth:`add`."""
        if not chunks:
            return
        digests = [chunk_digest(c) for c in chunks]
        with self._lock:
            if any(len(c.vector) != self.dimension for c in chunks):
                raise StoreError(f"Vectors must be {self.dimension}-d.", retryable=False)
            for label in [self._labels[c.id] for c in chunks if c.id in self._labels]:
                self._forget(label)
            self._insert(chunks, digests)
            self._generation += 1
            self._written = True
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
            for label in labels:
                self._forget(label)
            self._generation += 1
            self._written = True
        self._after_write()
        return len(labels)

    async def delete_document(self, document_id: str) -> int:
        """Remove a document's chunks."""
        return await asyncio.to_thread(self.delete_document_sync, document_id)

    async def clear(self) -> None:
        """Remove every chunk."""

        def run() -> None:
            with self._lock:
                self._reset(self._new_index(1024))
                self._generation += 1
                self._written = True
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
        hits = fuse(
            self.vector_search_sync(vector, candidates), self.keyword_search_sync(text, candidates), top_k=top_k
        )
        missing = missing_cosines(hits)
        if not missing:
            return hits
        cosines: dict[str, float] = {}
        with self._lock:
            present = [cid for cid in missing if cid in self._labels]
            if present:
                vectors = self._index.get_items([self._labels[c] for c in present], return_type="numpy")
                query = np.asarray(vector, dtype=np.float32)
                for cid, v in zip(present, vectors, strict=True):
                    cosines[cid] = float(np.dot(np.asarray(v, dtype=np.float32), query))
        return with_cosines(hits, cosines)

    async def hybrid_search(
        self, text: str, vector: npt.NDArray[np.float32], *, top_k: int, candidates: int = 50
    ) -> list[Hit]:
        """Vector + BM25, fused by reciprocal rank fusion, in one worker-thread hop."""
        return await asyncio.to_thread(self.hybrid_search_sync, text, vector, top_k, candidates)

    # -- durability ------------------------------------------------------------------------------------------

    def flush_sync(self) -> None:
        """Wait for a background refresh, then bring the BM25 index and the snapshot up to date."""
        self._join_refresh()
        self._refresh_keyword()
        self._save_snapshot()

    async def flush(self) -> None:
        """Make every write searchable by keyword and snapshot the index."""
        await asyncio.to_thread(self.flush_sync)

    def close_sync(self) -> None:
        """Blocking :meth:`close`."""
        if self._closed:
            return
        self._join_refresh()
        if self._keyword.generation != self._generation:
            self._refresh_keyword()
        self._save_snapshot()
        self._closed = True

    async def close(self) -> None:
        """Snapshot the index."""
        await asyncio.to_thread(self.close_sync)
