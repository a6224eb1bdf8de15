"""kill -9 in the middle of ingestion, start again: every document ends ready, nothing stuck or duplicated."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from control_api.db.engine import create_engine, session_factory
from control_api.services.ingestion_index import indexable_chunks
from knowledge.embedders.minilm import default_model_dir, load_model
from knowledge.stores.embedded import EmbeddedStore
from knowledge.types import StoredChunk
from tests.knowledge.conftest import DEMO, ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOXDESK_")}
    env.update({"VOXDESK_ENV": "test", "VOXDESK_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1"})
    return env


def _statuses(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return dict(conn.execute("SELECT filename, status FROM knowledge_documents").fetchall())
    except sqlite3.OperationalError:  # tables not created yet
        return {}


def test_kill_9_during_ingestion_then_resume(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "models").mkdir(parents=True)
    model = load_model(default_model_dir(), cache_dir=tmp_path / "onnx")  # the process-wide model (exported once)
    if model.path is not None:  # spare the child the one-time ONNX export
        shutil.copy(model.path, data_dir / "models" / model.path.name)
    docs = tmp_path / "docs"
    shutil.copytree(DEMO, docs)
    command = [sys.executable, "-m", "agent", "ingest", str(docs)]
    db = data_dir / "voxdesk.db"

    child = subprocess.Popen(command, cwd=ROOT, env=_env(data_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    killed_during: dict[str, str] = {}
    try:
        while time.monotonic() < deadline and child.poll() is None:
            statuses = _statuses(db)
            values = list(statuses.values())
            if "processing" in values and values.count("ready") >= 2:
                os.kill(child.pid, signal.SIGKILL)
                killed_during = statuses
                break
            time.sleep(0.02)
    finally:
        if child.poll() is None and not killed_during:
            child.kill()
        child.wait(30)
    assert killed_during, "the ingestion finished or never started before it could be killed"
    assert child.returncode == -signal.SIGKILL
    after_kill = _statuses(db)
    assert "processing" in after_kill.values() and "pending" in after_kill.values()
    with sqlite3.connect(db) as conn:
        paths = [p for (p,) in conn.execute("SELECT storage_path FROM knowledge_documents")]
    assert len(paths) == 17 and all(Path(p).exists() for p in paths)  # every original was stored before processing

    rerun = subprocess.run(
        command, cwd=ROOT, env=_env(data_dir), capture_output=True, text=True, timeout=300, check=False
    )
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    lines = [
        line for line in rerun.stdout.splitlines() if line.startswith(("ready", "failed", "pending", "processing"))
    ]
    assert len(lines) == 17 and all(line.startswith("ready") for line in lines), rerun.stdout

    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, status, chunk_count FROM knowledge_documents").fetchall()
        per_doc = dict(
            conn.execute("SELECT document_id, COUNT(*) FROM knowledge_chunks GROUP BY document_id").fetchall()
        )
        running = conn.execute("SELECT COUNT(*) FROM ingestion_jobs WHERE status IN ('queued', 'running')").fetchone()[
            0
        ]
    assert {status for _, status, _ in rows} == {"ready"} and len(rows) == 17
    assert running == 0
    assert per_doc == {doc_id: count for doc_id, _, count in rows}  # no duplicated chunk in the database
    # The store keeps no chunks of its own: the index it saved must be exactly the database's chunks, so a
    # restart restores it without inserting or dropping anything.
    model = json.loads((data_dir / "knowledge" / "embedded" / "index" / "manifest.json").read_text())["model"]
    store = EmbeddedStore(dimension=384, path=data_dir / "knowledge" / "embedded", model_id=model)
    try:
        chunks, stale = asyncio.run(_indexable(db, model))
        report = store.restore_sync(chunks)
        store_counts = store.document_counts_sync()
    finally:
        store.close_sync()
    assert stale == [] and (report.added, report.removed) == (0, 0) and report.kept == sum(per_doc.values())
    assert store_counts == per_doc  # nor in the vector index


async def _indexable(db: Path, model: str) -> tuple[list[StoredChunk], list[str]]:
    engine = create_engine(f"sqlite+aiosqlite:///{db}")
    try:
        async with session_factory(engine)() as session:
            return await indexable_chunks(session, dimension=384, model_id=model)
    finally:
        await engine.dispose()
