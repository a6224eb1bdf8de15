"""Every reach into a library's private parts, in one place: what it is, why it pays, what it was written for.

Each patch is a :class:`LibraryPatch` in :data:`PATCHES` (``pipelines/compat/registry.py``): the library objects
it replaces, writes or reads, why, the gain measured when it went in, the library versions and the sha256 of each
original's source it was written against. Before a patch is applied, :func:`usable` checks the installed versions
and sources against the record; when either differs the patch steps aside with one ``library_patch_skipped`` log
line and the library's own behaviour is kept. ``docs/patches.md`` lists them all.

Process-wide patches are applied by :func:`apply_all` (once, at start-up: ``pipelines.build.build_stages`` calls
it); per-instance ones where the object is built (:func:`push_audio_directly`, :func:`lean_observer`, and those of
``pipelines.vad`` and ``agent.transports.webrtc_media``), each asking :func:`usable` first. Importing this package
patches nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from pipelines.compat import output_reader
from pipelines.compat.input_push import push_audio_directly
from pipelines.compat.registry import (
    PATCHES,
    LibraryPatch,
    Original,
    check,
    resolve,
    source_sha256,
    substitute,
    usable,
)
from pipelines.compat.worker_observer import LeanWorkerObserver, lean_observer

__all__ = [
    "PATCHES",
    "LeanWorkerObserver",
    "LibraryPatch",
    "Original",
    "apply_all",
    "check",
    "lean_observer",
    "push_audio_directly",
    "resolve",
    "source_sha256",
    "substitute",
    "usable",
]

# The appliers of the registry's process-wide patches (scope "process"), by name.
_PROCESS_WIDE: dict[str, Callable[[], bool]] = {output_reader.PATCH: output_reader.install}


def apply_all() -> dict[str, bool]:
    """Apply every process-wide patch the installed libraries allow (idempotent).

    Returns:
        For each process-wide patch, whether it is in effect after this call.
    """
    missing = {n for n, p in PATCHES.items() if p.scope == "process"} ^ set(_PROCESS_WIDE)
    if missing:
        raise RuntimeError(f"process-wide patches without an applier, or appliers without a record: {missing}")
    state: dict[str, bool] = {}
    for name, install in _PROCESS_WIDE.items():
        install()
        state[name] = usable(name)
    return state
