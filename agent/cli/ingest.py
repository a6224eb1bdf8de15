"""``voxdesk ingest PATH...``: add files (and the files under directories) to the knowledge base now.

Each file is stored and queued exactly as an upload through the API would be (same content hash, same
type sniffing), then the queue is processed in this process and one line per document prints its final
status. The exit code is 1 when any document failed or was refused.

Run it while the server is stopped, or upload through the API instead: a running server's vector store
learns about documents ingested here at its next start (it reconciles the store with the database).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TextIO

from config import Settings
from control_api.db.engine import create_engine, session_factory
from control_api.db.migrate import upgrade
from control_api.db.models import KnowledgeDocument
from control_api.problems import ProblemError
from control_api.services import audit
from control_api.services import knowledge as knowledge_service
from control_api.services.ingestion import IngestionWorker, add_document


def expand(paths: list[Path]) -> tuple[list[Path], list[Path]]:
    """The files named or under the directories named (hidden files skipped), and the paths that don't exist."""
    files: list[Path] = []
    missing: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and not any(part.startswith(".") for part in p.parts[len(path.parts) :])
            )
        elif path.is_file():
            files.append(path)
        else:
            missing.append(path)
    return list(dict.fromkeys(files)), missing


async def run_ingest(settings: Settings, paths: list[Path], *, out: TextIO | None = None) -> int:
    """Ingest ``paths``; returns the process exit code (0: every document ready, 1: any failed)."""
    stream = out or sys.stdout
    files, missing = expand(paths)
    failed = False
    for path in missing:
        print(f"failed      {path}: no such file or directory", file=stream)
        failed = True
    for directory in (settings.data_dir, settings.uploads_dir, settings.models_dir):
        directory.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
        sessions = session_factory(engine)
        service = await knowledge_service.start(settings=settings, sessions=sessions, run_worker=False)
        try:
            worker = IngestionWorker(sessions=sessions, kb=service.kb)
            await worker.recover()
            documents: list[tuple[Path, str, bool]] = []
            async with sessions() as session:
                for path in files:
                    data = await asyncio.to_thread(path.read_bytes)
                    try:
                        outcome = await add_document(
                            session,
                            uploads_dir=settings.uploads_dir,
                            data=data,
                            filename=path.name,
                            max_bytes=settings.knowledge.max_upload_bytes,
                            created_by=None,
                        )
                    except ProblemError as exc:
                        print(f"failed      {path}: {exc.detail}", file=stream)
                        failed = True
                        continue
                    documents.append((path, outcome.document.id, outcome.duplicate))
                await audit.record(
                    session,
                    audit.Actor.system("cli"),
                    "knowledge.upload",
                    target_type="knowledge_document",
                    detail={"documents": [doc_id for _, doc_id, _ in documents][:200], "source": "voxdesk ingest"},
                )
            await worker.drain()
            async with sessions() as session:
                for path, doc_id, duplicate in documents:
                    document = await session.get(KnowledgeDocument, doc_id)
                    if document is None:
                        print(f"failed      {path}: deleted while it was being ingested", file=stream)
                        failed = True
                    elif document.status == "ready":
                        note = " (already in the knowledge base)" if duplicate else ""
                        print(f"ready       {path}: {document.chunk_count} chunks{note}", file=stream)
                    else:
                        print(f"{document.status:<11} {path}: {document.error or ''}".rstrip(), file=stream)
                        failed = True
        finally:
            await knowledge_service.stop(service)
    finally:
        await engine.dispose()
    return 1 if failed else 0
