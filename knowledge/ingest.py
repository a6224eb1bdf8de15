"""Turning a file's bytes into embeddable chunks, isolated from the server process.

Parsing runs in a short-lived child process (forked from a ``forkserver`` that has the parsers preloaded, so
a fork costs milliseconds). The child has a memory cap and a time limit: a hostile file (a PDF that loops
the parser, a spreadsheet that expands to gigabytes) ends as a ``DocumentError`` with a reason a person can
act on, and the server stays up.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import multiprocessing.connection
import resource
from dataclasses import dataclass
from typing import Any

from knowledge.chunking import approx_tokens, chunk_sections
from knowledge.errors import DocumentError
from knowledge.parsers import parse
from knowledge.types import Chunk

PARSE_TIMEOUT_S = 120.0
PARSE_MEMORY_BYTES = 2 * 1024 * 1024 * 1024

_context: Any = None


def _ctx() -> Any:
    global _context
    if _context is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["__main__", "knowledge.ingest"])
        _context = ctx
    return _context


@dataclass(frozen=True, slots=True)
class PreparedDocument:
    """A parsed and chunked document."""

    title: str | None
    pages: int | None
    format: str
    chunks: list[Chunk]


def prepare(data: bytes, *, name_hint: str | None, max_tokens: int, overlap_tokens: int) -> PreparedDocument:
    """Parse and chunk in this process (blocking, CPU-bound).

    Raises:
        DocumentError: The document cannot be read, or has no text.

    """
    document = parse(data, name_hint=name_hint)
    chunks = chunk_sections(
        document.sections, max_tokens=max_tokens, overlap_tokens=overlap_tokens, count_tokens=approx_tokens
    )
    if not chunks:
        raise DocumentError("The document contains no readable text. Check that it is the right file.")
    return PreparedDocument(title=document.title, pages=document.pages, format=document.format, chunks=chunks)


def _child(
    conn: multiprocessing.connection.Connection,
    data: bytes,
    name_hint: str | None,
    max_tokens: int,
    overlap_tokens: int,
    memory_bytes: int,
) -> None:
    with contextlib.suppress(ValueError, OSError):  # a lower hard limit may already apply
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    try:
        conn.send(("ok", prepare(data, name_hint=name_hint, max_tokens=max_tokens, overlap_tokens=overlap_tokens)))
    except DocumentError as exc:
        conn.send(("error", exc.message))
    except MemoryError:
        conn.send(
            (
                "error",
                "The file needs more memory to read than allowed; it may be a decompression bomb. "
                "Save a simpler copy and upload that.",
            )
        )
    except BaseException as exc:  # noqa: BLE001 - everything must come back to the parent as a reason
        conn.send(
            (
                "error",
                f"The file could not be read ({type(exc).__name__}); it may be damaged. "
                "Save a new copy and upload that.",
            )
        )
    finally:
        conn.close()


def prepare_isolated_sync(
    data: bytes,
    *,
    name_hint: str | None,
    max_tokens: int,
    overlap_tokens: int,
    timeout_s: float = PARSE_TIMEOUT_S,
    memory_bytes: int = PARSE_MEMORY_BYTES,
) -> PreparedDocument:
    """Parse and chunk in a child process with a memory cap and a time limit (blocking).

    Raises:
        DocumentError: The document cannot be read, takes too long, or exhausts memory.

    """
    ctx = _ctx()
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_child, args=(sender, data, name_hint, max_tokens, overlap_tokens, memory_bytes), daemon=True
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(timeout_s):
            raise DocumentError(
                f"Reading the file took longer than {int(timeout_s)} seconds, so it was stopped. "
                "The file may be damaged or unusually complex; split it or save a simpler copy."
            )
        try:
            status, payload = receiver.recv()
        except EOFError:
            raise DocumentError(
                "The file reader stopped unexpectedly (it may have run out of memory on this file). "
                "Save a simpler copy and upload that."
            ) from None
    finally:
        receiver.close()
        if process.is_alive():
            process.kill()
        process.join(5)
    if status != "ok":
        raise DocumentError(str(payload))
    result: PreparedDocument = payload
    return result


async def prepare_isolated(
    data: bytes, *, name_hint: str | None, max_tokens: int, overlap_tokens: int, timeout_s: float = PARSE_TIMEOUT_S
) -> PreparedDocument:
    """:func:`prepare_isolated_sync` in a worker thread, so the event loop keeps running."""
    return await asyncio.to_thread(
        prepare_isolated_sync,
        data,
        name_hint=name_hint,
        max_tokens=max_tokens,
        overlap_tokens=overlap_tokens,
        timeout_s=timeout_s,
    )
