"""``voxdesk ingest``: add files to the knowledge base from the command line."""

from __future__ import annotations

from pathlib import Path

from config import Settings


async def run_ingest(settings: Settings, paths: list[Path]) -> int:
    """Ingest ``paths``; returns the process exit code."""
    raise NotImplementedError("knowledge ingestion lands with the knowledge-base issue")
