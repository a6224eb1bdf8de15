"""Accepting a document: the original is stored durably, then the ``pending`` document and its job are committed.

A document is identified by the SHA-256 of its bytes (unique in the database): uploading the same content
again returns the existing document, so an upload retried after a lost response never duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from control_api.db.models import IngestionJob, KnowledgeDocument
from control_api.problems import ProblemError
from knowledge.errors import DocumentError
from knowledge.sniff import sniff

EXTENSIONS = {
    "pdf": ".pdf",
    "docx": ".docx",
    "xlsx": ".xlsx",
    "html": ".html",
    "markdown": ".md",
    "text": ".txt",
    "csv": ".csv",
}
MEDIA_TYPES = {
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "html": "text/html",
    "markdown": "text/markdown",
    "text": "text/plain",
    "csv": "text/csv",
}


@dataclass(frozen=True, slots=True)
class AddOutcome:
    """The document an upload created, or the existing one with the same content (``duplicate``)."""

    document: KnowledgeDocument
    duplicate: bool


def write_original(directory: Path, name: str, data: bytes) -> Path:
    """Write ``data`` durably: temp file, fsync, atomic rename, fsync of the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / name
    if target.exists() and target.stat().st_size == len(data):
        return target
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def _sniff(data: bytes, filename: str) -> str:
    try:
        return sniff(data, name_hint=filename)
    except DocumentError as exc:
        raise ProblemError(415, exc.message, type_="unsupported-document", extra={"filename": filename}) from None


async def add_document(
    session: AsyncSession,
    *,
    uploads_dir: Path,
    data: bytes,
    filename: str,
    max_bytes: int,
    created_by: str | None,
    source_url: str | None = None,
) -> AddOutcome:
    """Store an original and queue it for ingestion (or return the document that has the same content).

    The original is on disk (fsynced) and the document and its queued job are committed before this returns.

    Raises:
        ProblemError: 413 when too large, 415 when the content is not a supported, safe document.

    """
    if len(data) > max_bytes:
        raise ProblemError(
            413,
            f"{filename} is larger than the {max_bytes} bytes allowed.",
            type_="file-too-large",
            extra={"filename": filename},
        )
    fmt = await asyncio.to_thread(_sniff, data, filename)
    if fmt == "sitemap":
        raise ProblemError(
            415,
            "A sitemap lists pages; import it with /api/knowledge/import-url.",
            type_="unsupported-document",
            extra={"filename": filename},
        )
    digest = hashlib.sha256(data).hexdigest()
    existing = await session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.sha256 == digest))
    if existing is not None:
        return AddOutcome(existing, duplicate=True)
    path = await asyncio.to_thread(write_original, uploads_dir / digest[:2], digest + EXTENSIONS[fmt], data)
    document = KnowledgeDocument(
        filename=Path(filename).name[:255] or "document",
        content_type=MEDIA_TYPES[fmt],
        source_url=source_url,
        sha256=digest,
        size_bytes=len(data),
        storage_path=str(path),
        status="pending",
        created_by=created_by,
    )
    session.add(document)
    try:
        await session.flush()
        session.add(IngestionJob(document_id=document.id, status="queued"))
        await session.commit()
    except IntegrityError:
        await session.rollback()
        existing = await session.scalar(select(KnowledgeDocument).where(KnowledgeDocument.sha256 == digest))
        if existing is None:
            raise
        return AddOutcome(existing, duplicate=True)
    return AddOutcome(document, duplicate=False)
