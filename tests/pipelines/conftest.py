"""Fixtures for the voice pipeline: the demo knowledge base, its domain LM, real stages, audio helpers."""

from __future__ import annotations

import io
import subprocess
import wave
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchmarks.asr_eval.demo_kb import DemoRetriever, MiniLMEmbedder, Section, corpus_text, load_sections
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
def demo_sections() -> list[Section]:
    return load_sections()


@pytest.fixture(scope="session")
def domain_lm(demo_sections: list[Section], tmp_path_factory: pytest.TempPathFactory) -> DomainLM:
    return build_domain_lm(corpus_text(demo_sections), tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture(scope="session")
def demo_retriever(demo_sections: list[Section], embedder: MiniLMEmbedder) -> DemoRetriever:
    return DemoRetriever(demo_sections, embedder)


@pytest.fixture
def sink() -> Iterator[RecordingSink]:
    yield RecordingSink()


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    return tmp_path / "models"
