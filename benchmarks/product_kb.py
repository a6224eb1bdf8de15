"""The demo knowledge base on the product's own stack, for the voice-path tests and the spoken benchmarks.

What ``./scripts/run`` loads (``voxdesk ingest demo/knowledge``: :func:`agent.cli.ingest.run_ingest`), searched
the way ``voxdesk serve`` searches it: the shipped :class:`~control_api.services.knowledge.KnowledgeService`
(``control_api.services.knowledge.start``) on a SQLite database, behind the server's adapter
:class:`~agent.wiring.knowledge.KnowledgeRetriever`. The embedder the brain matches tools with is the one the
service builds, and the domain language model's text is the server's own
(:func:`agent.wiring.pipelines.knowledge_corpus`).

The ingested data directory is built once and kept under the system temp directory, keyed by a hash of the demo
files, the code that parses, chunks, embeds and stores them, and the knowledge settings: a change to any of them
builds a fresh one. Each user works on a private copy (its query log and store files are its own).

Scripts that use this must guard their entry point (``if __name__ == "__main__":``): ingestion parses each file
in a child process started by multiprocessing's forkserver, which imports the main module.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import re
import shutil
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from agent.cli.ingest import run_ingest
from agent.wiring.knowledge import KnowledgeRetriever
from agent.wiring.pipelines import knowledge_corpus
from config import Settings
from config.settings import DatabaseSettings
from control_api.db.engine import create_engine, session_factory
from control_api.db.models import RagQuery
from control_api.services import calls as calls_service
from control_api.services import knowledge as knowledge_service
from control_api.services.knowledge import KnowledgeService
from knowledge.embedders import create_embedder
from knowledge.embedders.base import Embedder
from pipelines.contracts import Retrieval

REPO = Path(__file__).resolve().parents[1]
DEMO_DIR = REPO / "demo" / "knowledge"
CACHE_ROOT = Path(tempfile.gettempdir()) / "voxdesk-demo-kb"
# What an ingested database depends on besides the demo files and the knowledge settings.
CODE = ("knowledge", "control_api/services", "control_api/db", "agent/cli/ingest.py")
READY = "ingest.log"  # written last: an entry without it is incomplete
STALE_S = 86400.0  # entries of other keys this much older than a new one are removed when it is built
_built: dict[str, Path] = {}  # knowledge settings -> ingested data dir, for the life of the process

# ``knowledge.retrieval.citation``: 'Title (file.md), section "Heading", page 2, chunk 3' ('file.md, ...' untitled).
_CITATION = re.compile(
    r"^(?:.* \((?P<file>[^()]+)\)|(?P<bare>[^,]+))"
    r'(?:, section "(?P<section>.*?)")?(?:, page \d+)?, chunk \d+$'
)


def demo_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Settings of a test server on ``data_dir``: its SQLite database there, no ``.env``, test environment."""
    return Settings(_env_file=None, env="test", data_dir=data_dir, database=DatabaseSettings(), **overrides)


def cache_key(settings: Settings) -> str:
    """A hash of the demo files, the ingestion code and the knowledge settings."""
    digest = hashlib.sha256(settings.knowledge.model_dump_json().encode())
    files = [p for p in DEMO_DIR.rglob("*") if p.is_file()]
    for root in CODE:
        path = REPO / root
        files += [path] if path.is_file() else [p for p in path.rglob("*.py") if p.is_file()]
    for path in sorted(files):
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


async def ingested_demo(settings: Settings | None = None) -> Path:
    """The data directory of the ingested demo knowledge base, built on first use (treat it as read-only).

    Args:
        settings: Their knowledge section is used (and keys the cache); default: the defaults.

    """
    settings = settings or demo_settings(CACHE_ROOT)
    memo = settings.knowledge.model_dump_json()
    if memo in _built:
        return _built[memo]
    key = cache_key(settings)
    entry = CACHE_ROOT / key
    if not (entry / READY).is_file():
        CACHE_ROOT.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=CACHE_ROOT))
        try:
            out = io.StringIO()
            code = await run_ingest(settings.model_copy(update={"data_dir": build / "data"}), [DEMO_DIR], out=out)
            if code != 0:
                raise RuntimeError(f"ingesting {DEMO_DIR} failed:\n{out.getvalue()}")
            (build / READY).write_text(out.getvalue(), encoding="utf-8")
            try:
                os.rename(build, entry)
            except OSError:  # another process finished the same entry first
                if not (entry / READY).is_file():
                    raise
        finally:
            shutil.rmtree(build, ignore_errors=True)
        _prune(keep=entry)
    _built[memo] = entry / "data"
    return _built[memo]


def _prune(*, keep: Path) -> None:
    """Remove the entries of other keys built more than ``STALE_S`` before ``keep``."""
    cutoff = (keep / READY).stat().st_mtime - STALE_S
    for other in CACHE_ROOT.iterdir():
        ready = other / READY
        if other != keep and ready.is_file() and ready.stat().st_mtime < cutoff:
            shutil.rmtree(other, ignore_errors=True)


async def demo_data_dir(data_dir: Path, **overrides: Any) -> Settings:
    """Copy the ingested demo knowledge base into ``data_dir`` (which must not exist); returns its settings."""
    settings = demo_settings(data_dir, **overrides)
    source = await ingested_demo(settings)
    await asyncio.to_thread(shutil.copytree, source, data_dir)
    return settings


def demo_data_dir_sync(data_dir: Path, **overrides: Any) -> Settings:
    """:func:`demo_data_dir` for code outside an event loop (session fixtures, a benchmark's set-up)."""
    return asyncio.run(demo_data_dir(data_dir, **overrides))


def service_embedder(settings: Settings) -> Embedder:
    """The embedder the knowledge service of ``settings`` builds (``knowledge.kb.build_knowledge_base``).

    The server hands the service's embedder to the brain, which matches requests to tools with it; the model
    loads once per process, so this one and the service's share it.
    """
    ks = settings.knowledge
    return create_embedder(
        ks.embedder,
        model=ks.embedder_model,
        base_url=ks.embedder_base_url,
        api_key=ks.embedder_api_key.get_secret_value() if ks.embedder_api_key else None,
        cache_dir=settings.models_dir,
    )


async def demo_corpus(settings: Settings) -> str:
    """The text the server builds pocketsphinx's domain language model from (``knowledge_corpus``)."""
    engine = create_engine(settings.database_url)
    try:
        corpus, _ = await knowledge_corpus(session_factory(engine))
        return corpus
    finally:
        await engine.dispose()


class CallsOnRecord:
    """The server's retriever, with each call on record before its first question is logged.

    The query log refers to its call (``rag_queries.call_id``), and the server records a call before the
    call's pipeline starts. The in-memory calls of the tests and benchmarks are recorded here: at
    :meth:`open_call` (before the audio starts, so the timings do not include it) or else at their first
    retrieval. Everything else is :class:`~agent.wiring.knowledge.KnowledgeRetriever`'s.

    Args:
        retriever: The server's retriever.
        sessions: The database the call rows go to.

    """

    def __init__(self, retriever: KnowledgeRetriever, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.inner = retriever
        self._sessions = sessions
        self._calls: dict[str, asyncio.Task[None]] = {}

    async def open_call(self, call_id: str) -> None:
        """Record ``call_id`` as a call (once)."""
        task = self._calls.get(call_id)
        if task is None:
            task = self._calls[call_id] = asyncio.create_task(self._record(call_id), name="record-call")
        await asyncio.shield(task)

    async def _record(self, call_id: str) -> None:
        async with self._sessions() as session:
            await calls_service.create_call(session, channel="memory", call_id=call_id, status="active")
            await session.commit()

    async def retrieve(
        self, question: str, *, top_k: int = 5, call_id: str | None = None, log: bool = True
    ) -> Retrieval:
        """:meth:`KnowledgeRetriever.retrieve`, the call recorded first."""
        if call_id is not None:
            await self.open_call(call_id)
        return await self.inner.retrieve(question, top_k=top_k, call_id=call_id, log=log)

    async def log(self, question: str, retrieval: Retrieval, *, call_id: str | None = None) -> None:
        """:meth:`KnowledgeRetriever.log`, the call recorded first."""
        if call_id is not None:
            await self.open_call(call_id)
        await self.inner.log(question, retrieval, call_id=call_id)

    async def drain(self) -> None:
        """Wait for the query-log writes still running."""
        await self.inner.drain()


@dataclass
class DemoKnowledge:
    """The knowledge service on one data directory, and the server's retriever over it."""

    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    service: KnowledgeService
    retriever: CallsOnRecord

    @property
    def embedder(self) -> Embedder:
        """The service's embedder (the server hands it to the brain for tool matching)."""
        return self.service.embedder

    async def corpus(self) -> str:
        """The text the server builds pocketsphinx's domain language model from."""
        corpus, _ = await knowledge_corpus(self.sessions)
        return corpus

    async def logged_questions(self) -> list[str]:
        """The query log (``rag_queries``), oldest first, once the retriever's pending writes are done."""
        await self.retriever.drain()
        async with self.sessions() as session:
            return list(await session.scalars(select(RagQuery.question).order_by(RagQuery.id)))


@asynccontextmanager
async def open_knowledge(settings: Settings) -> AsyncIterator[DemoKnowledge]:
    """Start the knowledge service on ``settings``' data directory (no ingestion worker), and its retriever."""
    engine = create_engine(settings.database_url)
    try:
        sessions = session_factory(engine)
        service = await knowledge_service.start(settings=settings, sessions=sessions, run_worker=False)
        retriever = CallsOnRecord(KnowledgeRetriever(lambda: service), sessions)
        try:
            yield DemoKnowledge(settings, engine, sessions, service, retriever)
        finally:
            await retriever.drain()
            await knowledge_service.stop(service)
    finally:
        await engine.dispose()


@asynccontextmanager
async def open_demo_knowledge(data_dir: Path, **overrides: Any) -> AsyncIterator[DemoKnowledge]:
    """A private copy of the ingested demo knowledge base in ``data_dir``, opened (:func:`open_knowledge`)."""
    async with open_knowledge(await demo_data_dir(data_dir, **overrides)) as kb:
        yield kb


def cited(citation: str) -> tuple[str | None, str | None]:
    """The file name and section a knowledge-base citation names (``(None, None)`` for another form)."""
    match = _CITATION.match(citation)
    if match is None:
        return None, None
    return match["file"] or match["bare"], match["section"]


def cites(citation: str | None, document: str, section: str | None = None) -> bool:
    """Whether ``citation`` names the file ``document`` and, when given, its ``section`` (last heading)."""
    if not citation:
        return False
    file, heading = cited(citation)
    return file == document and (section is None or heading == section)
