"""``voxdesk doctor``: what is configured, reachable and loaded, and how to fix what is not."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Callable
from typing import TYPE_CHECKING

from sqlalchemy import text

from config import Settings

if TYPE_CHECKING:
    from knowledge.calibration import Calibration

Echo = Callable[[str], None]

# Optional backends: (module to import, what needs it, how to install).
OPTIONAL_BACKENDS: list[tuple[str, str, str]] = [
    ("faster_whisper", "ASR backend faster-whisper", "pip install 'voxdesk[whisper]'"),
    ("weaviate", "knowledge store weaviate", "pip install 'voxdesk[weaviate]'"),
    ("livekit.api", "LiveKit worker and SIP", "pip install 'voxdesk[livekit]'"),
    ("ollama", "LLM backend ollama (native client)", "pip install 'voxdesk[ollama]'"),
    ("openai", "LLM/ASR/TTS backend openai", "pip install 'voxdesk[openai]'"),
]
# System programs: (binary, what needs it, Debian package). Those the configured TTS backend runs
# (``capabilities.programs``) are required; the others are reported.
PROGRAMS: list[tuple[str, str, str]] = [
    ("flite", "TTS backend flite (default)", "flite"),
    ("espeak-ng", "TTS backend espeak-ng", "espeak-ng"),
    ("sox", "audio conversion in tests and benchmarks", "sox"),
    ("chromium", "browser end-to-end tests", "chromium"),
    ("sipp", "SIP tests", "sip-tester"),
    ("redis-server", "Redis for tests", "redis-server"),
]


def _line(echo: Echo, ok: bool, what: str, detail: str = "", fix: str = "") -> None:
    mark = "ok  " if ok else "FAIL"
    echo(f"[{mark}] {what}" + (f": {detail}" if detail else "") + (f"  -> fix: {fix}" if fix and not ok else ""))


async def _check_database(settings: Settings, echo: Echo) -> bool:
    from control_api.db.engine import create_engine
    from control_api.db.migrate import current_revision, head_revision

    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        revision = await current_revision(engine)
    except Exception as exc:  # noqa: BLE001 - reported to the operator with the fix
        _line(echo, False, "database", f"{type(exc).__name__}", "check VOXDESK_DATABASE__URL and that the server runs")
        return False
    finally:
        await engine.dispose()
    head = head_revision()
    _line(echo, True, "database", f"{engine.dialect.name}, reachable")
    _line(echo, revision == head, "schema", f"at {revision}, newest {head}", "voxdesk migrate")
    return revision == head


async def _check_cache(settings: Settings, echo: Echo) -> bool:
    from control_api.cache import create_cache

    cache = create_cache(settings.redis.url)
    try:
        await cache.ping()
    except Exception as exc:  # noqa: BLE001 - reported to the operator with the fix
        _line(echo, False, "cache", f"{cache.name}: {type(exc).__name__}", "check VOXDESK_REDIS__URL / start redis")
        return False
    finally:
        await cache.close()
    _line(echo, True, "cache", cache.name)
    return True


def _programs_needed(settings: Settings) -> frozenset[str]:
    """The executables the configured TTS backend runs (none in speech-to-speech mode)."""
    from pipelines.registry import backend_class

    p = settings.pipeline
    if backend_class("brain", p.llm.backend).capabilities.speech_to_speech:
        return frozenset()
    return frozenset(backend_class("tts", p.tts.backend).capabilities.programs)


async def _calibration_line(settings: Settings) -> str:
    """The "not found" threshold the knowledge base uses, as the server last derived it (and whether it is stale)."""
    from knowledge.calibration import directory_for, load

    ks = settings.knowledge
    if not ks.calibrate:
        return f"not-found threshold: {ks.score_threshold} (configured; knowledge.calibrate is off)"
    cal = load(directory_for(settings.data_dir))
    if cal is None:
        return (
            f"not-found threshold: not calibrated yet (derived when the server starts; until then {ks.score_threshold})"
        )
    detail = f"{cal.chunks} passages, model {cal.model_id}, base {cal.fingerprint[:12]}, {cal.calibrated_at}"
    detail += await _stale(settings, cal)
    if cal.source == "configured":
        return f"not-found threshold: {cal.threshold} (configured: base too small to calibrate; {detail})"
    return (
        f"not-found threshold: {cal.threshold} (calibrated on the base: own questions median {cal.positive_median}, "
        f"off-topic p95 {cal.negative_p95}; {detail})"
    )


async def _stale(settings: Settings, cal: Calibration) -> str:
    """What to add when the base's passages (the database's record of them) changed since ``cal`` was derived."""
    from sqlalchemy import select

    from control_api.db.engine import create_engine
    from control_api.db.models import KnowledgeChunk
    from knowledge.calibration import fingerprint_texts

    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as conn:
            rows = (
                await conn.execute(select(KnowledgeChunk.document_id, KnowledgeChunk.seq, KnowledgeChunk.text))
            ).all()
    except Exception:  # noqa: BLE001 - the database check below reports an unreachable or unmigrated database
        return ""
    finally:
        await engine.dispose()
    if fingerprint_texts(((f"{d}:{seq}", text) for d, seq, text in rows), cal.model_id) == cal.fingerprint:
        return ""
    return (
        f"; STALE: the documents changed since, {len(rows)} passages now; the server derives it again when it "
        "starts or at its next question"
    )


async def run_doctor(settings: Settings, echo: Echo) -> bool:
    """Print a diagnosis; returns False when something required is broken."""
    echo("Voxdesk doctor")
    echo(f"  environment: {settings.env}; data dir: {settings.data_dir.resolve()}")
    p = settings.pipeline
    echo(
        f"  pipeline: ASR={p.asr.backend} LLM={p.llm.backend} TTS={p.tts.backend} "
        f"VAD stop={p.vad.stop_secs}s smart_turn={p.vad.smart_turn}"
    )
    echo(f"  knowledge: store={settings.knowledge.store} embedder={settings.knowledge.embedder}")
    echo("  " + await _calibration_line(settings))
    ok = await _check_database(settings, echo)
    ok = await _check_cache(settings, echo) and ok
    needed = _programs_needed(settings)
    for binary, purpose, package in PROGRAMS:
        found = shutil.which(binary)
        required = binary in needed
        _line(echo, bool(found), f"program {binary}", purpose, f"apt-get install {package}")
        ok = ok and (bool(found) or not required)
    for module, purpose, install in OPTIONAL_BACKENDS:
        present = importlib.util.find_spec(module.split(".")[0]) is not None
        _line(echo, present, f"optional {module}", purpose + ("" if present else " (not installed)"), install)
    from agent.cli.models_check import check_models

    ok = await check_models(settings, echo) and ok
    echo("result: " + ("healthy" if ok else "problems found (see FAIL lines)"))
    return ok
