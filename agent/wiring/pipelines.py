"""The real voice pipeline for every call: stages prewarmed once per process, the KB-adapted recogniser.

``VoiceStages`` is the composition of ``pipelines`` for the server: it turns ``Settings`` into stage options,
loads the stages once at start-up (off the event loop), keeps the domain language model of a recogniser that
takes one (``capabilities.domain_lm``) in step with the knowledge base, reports readiness, and builds each
call's pipeline with the call's sink, the tools' database handlers and the knowledge retriever.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from pipecat.transports.base_transport import BaseTransport
from sqlalchemy import func, select

from agent.calls.handoff import load_hold_pcm
from agent.calls.runner import AgentCaptions
from agent.calls.service import CallPlan
from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from agent.calls.tools import CustomApiCaller, HandoffOpener, TicketRecorder
from agent.transports.digits import PHONE_CHANNELS, PhoneKeypad
from config import Settings
from control_api.db.models import KnowledgeDocument
from control_api.services.knowledge import corpus_text
from pipelines.asr.base import ASRBackend
from pipelines.asr.kb_hints import kb_prompt, kb_terms
from pipelines.asr.whisper_pool import WhisperOptions
from pipelines.build import Stages, build_pipeline, build_stages
from pipelines.contracts import PersonaSpec, Retriever, TextEmbedder
from pipelines.options import ASROptions, BrainOptions, TTSOptions, VADOptions
from pipelines.registry import backend_class

log = structlog.get_logger(__name__)
KB_POLL_SECS = 30.0


@dataclass(frozen=True, slots=True)
class StageOptions:
    """Stage options taken from ``Settings`` (only composition roots read settings)."""

    asr: ASROptions
    brain: BrainOptions
    tts: TTSOptions
    vad: VADOptions
    # Build a domain language model from the knowledge base, if the recogniser takes one.
    domain_lm: bool
    # Whisper's second opinion on pocketsphinx's finals.
    whisper: WhisperOptions
    models_dir: Path
    recordings_dir: Path | None

    @classmethod
    def from_settings(cls, settings: Settings) -> StageOptions:
        """Map the ``pipeline`` section (and paths) of ``settings`` to stage options."""
        p = settings.pipeline

        def secret(value: Any) -> str | None:
            return value.get_secret_value() if value is not None else None

        return cls(
            asr=ASROptions(
                backend=p.asr.backend,
                language=p.asr.language,
                model_path=p.asr.model_path,
                base_url=p.asr.base_url,
                api_key=secret(p.asr.api_key),
                model=p.asr.model,
                processes=p.asr.processes,
                acoustic_model=p.asr.acoustic_model,
            ),
            brain=BrainOptions(
                backend=p.llm.backend,
                base_url=p.llm.base_url,
                api_key=secret(p.llm.api_key),
                model=p.llm.model,
                temperature=p.llm.temperature,
            ),
            tts=TTSOptions(
                backend=p.tts.backend,
                voice=p.tts.voice,
                model_path=p.tts.model_path,
                base_url=p.tts.base_url,
                api_key=secret(p.tts.api_key),
                model=p.tts.model,
                speaking_rate=p.tts.speaking_rate,
                processes=p.tts.processes,
            ),
            vad=VADOptions(
                confidence=p.vad.confidence,
                start_secs=p.vad.start_secs,
                stop_secs=p.vad.stop_secs,
                min_volume=p.vad.min_volume,
                echo_margin_db=p.vad.echo_margin_db if p.vad.echo_aware else None,
                stop_below_peak=p.vad.stop_below_peak,
                smart_turn=p.vad.smart_turn,
            ),
            domain_lm=p.asr.domain_lm,
            whisper=WhisperOptions(
                mode=p.asr.whisper.mode,
                processes=p.asr.whisper.processes,
                deadline_s=p.asr.whisper.deadline_s,
                model_path=p.asr.whisper.model_path,
                speculate_after_ms=p.asr.whisper.speculate_after_ms,
                speculate=p.asr.whisper.speculate,
                window_s=p.asr.whisper.window_s,
            ),
            models_dir=settings.models_dir,
            recordings_dir=settings.recordings_dir if settings.voice.record_calls else None,
        )


# The knowledge side the pipeline needs: a retriever, and an embedder to match caller requests to tools.
KnowledgeProvider = Callable[[], Awaitable[tuple[Retriever, TextEmbedder | None]]]


async def knowledge_corpus(sessions: Sessions) -> tuple[str, str]:
    """The text of every ready knowledge chunk, and a fingerprint that changes when the knowledge base does."""
    async with sessions() as session:
        stats = await session.execute(
            select(func.count(KnowledgeDocument.id), func.max(KnowledgeDocument.updated_at)).where(
                KnowledgeDocument.status == "ready"
            )
        )
        count, updated = stats.one()
        corpus = await corpus_text(session)
    fingerprint = hashlib.sha256(f"{count}|{updated}|{len(corpus)}".encode()).hexdigest()[:16]
    return corpus, fingerprint


class VoiceStages:
    """Prewarmed stages of this process and the factory of each call's pipeline.

    Args:
        options: Stage options from the settings.
        knowledge: Gives the retriever and the embedder once the knowledge service is up.
        custom_tools: The operator's custom API tools (Integration Studio), offered to LLM brains; None: none.

    """

    def __init__(
        self, *, options: StageOptions, knowledge: KnowledgeProvider, custom_tools: CustomApiCaller | None = None
    ) -> None:
        self.options = options
        self._knowledge = knowledge
        self._custom = custom_tools
        self._stages: Stages | None = None
        self._retriever: Retriever | None = None
        self._sessions: Sessions | None = None
        self._fingerprint: str | None = None
        self._watcher: asyncio.Task[None] | None = None
        self.loaded_in_s: float | None = None
        # The knowledge base's terms (Whisper's prompt), from the last domain model's corpus.
        self._terms: tuple[str, ...] = ()
        self._prompt: str | None = None
        # The hold audio of a warm handoff (agent/assets/hold.wav), read once.
        self.hold_pcm = load_hold_pcm()

    @property
    def stages(self) -> Stages:
        """The loaded stages (after ``prewarm``)."""
        if self._stages is None:
            raise RuntimeError("the voice stages are not loaded yet")
        return self._stages

    def asr(self) -> ASRBackend | None:
        """The prewarmed recogniser backend (None before start-up or in speech-to-speech mode)."""
        return self._stages.asr if self._stages is not None else None

    async def prewarm(self, sessions: Sessions) -> None:
        """Load every stage once (off the event loop) and start following knowledge-base changes."""
        started = time.perf_counter()
        self._sessions = sessions
        if self._custom is not None:
            try:
                await self._custom.refresh(sessions)
            except Exception as exc:  # noqa: BLE001 - calls still work without the custom tools; retried later
                log.warning("custom_tools_load_failed", error_type=type(exc).__name__)
        retriever, embedder = await self._knowledge()
        self._retriever = retriever
        asr = self.options.asr
        follow_knowledge = self.options.domain_lm and self._takes_domain_lm()
        if follow_knowledge:
            built = await self._build_domain_lm()
            if built is not None:
                asr = ASROptions(
                    **{
                        **_fields(asr),
                        "lm_path": built[0],
                        "dict_path": built[1],
                        "hotwords": self._terms,
                        "prompt": self._prompt,
                    }
                )
        self._stages = await asyncio.to_thread(
            build_stages,
            asr=asr,
            brain=self.options.brain,
            tts=self.options.tts,
            vad=self.options.vad,
            embedder=embedder,
            whisper=self.options.whisper,
        )
        await self._stages.warm()
        self.loaded_in_s = round(time.perf_counter() - started, 2)
        log.info("voice_stages_loaded", seconds=self.loaded_in_s, domain_lm=self._fingerprint is not None)
        if follow_knowledge:
            self._watcher = asyncio.create_task(self._follow_knowledge(), name="voice-kb-watcher")

    def _takes_domain_lm(self) -> bool:
        """Whether the configured recogniser takes a domain language model (none in speech-to-speech mode)."""
        if backend_class("brain", self.options.brain.backend).capabilities.speech_to_speech:
            return False
        return backend_class("asr", self.options.asr.backend).capabilities.domain_lm

    async def _build_domain_lm(self) -> tuple[Path, Path] | None:
        from pipelines.asr.domain_lm import build_domain_lm

        assert self._sessions is not None
        corpus, fingerprint = await knowledge_corpus(self._sessions)
        self._fingerprint = fingerprint
        if not corpus.strip():
            log.info("domain_lm_skipped", reason="empty knowledge base")
            return None
        model = await asyncio.to_thread(build_domain_lm, corpus, self.options.models_dir)
        self._terms = tuple(kb_terms(corpus))
        self._prompt = kb_prompt(corpus)
        log.info("domain_lm_built", vocabulary=model.vocabulary_size, sentences=model.sentences)
        return model.lm_path, model.dict_path

    async def _follow_knowledge(self) -> None:
        while True:
            await asyncio.sleep(KB_POLL_SECS)
            try:
                assert self._sessions is not None
                _, fingerprint = await knowledge_corpus(self._sessions)
                if fingerprint == self._fingerprint:
                    continue
                built = await self._build_domain_lm()
                if built is not None and self._stages is not None and self._stages.asr is not None:
                    self._stages.asr.adapt(
                        lm_path=str(built[0]), dict_path=str(built[1]), hotwords=self._terms, prompt=self._prompt
                    )
            except Exception as exc:  # noqa: BLE001 - keep following; the previous model stays in use
                log.warning("domain_lm_rebuild_failed", error_type=type(exc).__name__)

    async def close(self) -> None:
        """Stop following the knowledge base; stop the recogniser's and synthesiser's worker processes."""
        if self._watcher is not None:
            self._watcher.cancel()
        if self._custom is not None:
            await self._custom.aclose()
        if self._stages is not None and self._stages.asr is not None:
            await asyncio.to_thread(self._stages.asr.close)
        if self._stages is not None and self._stages.tts is not None:
            await asyncio.to_thread(self._stages.tts.close)  # waits for worker processes to exit

    async def ready(self) -> None:
        """Readiness check: raises until the stages are loaded."""
        if self._stages is None:
            raise RuntimeError("voice models are still loading")

    def __call__(self, *, transport: BaseTransport, call: CallSession, persona: PersonaSpec) -> CallPlan:
        """Build ``call``'s pipeline (cheap: the stages are shared)."""
        assert self._sessions is not None and self._retriever is not None
        built = build_pipeline(
            transport=transport,
            stages=self.stages,
            retriever=self._retriever,
            sink=call.sink,
            persona=persona,
            call_id=call.call_id,
            create_ticket=TicketRecorder(sessions=self._sessions),
            transfer_to_human=HandoffOpener(sessions=self._sessions, call=call),
            recording_dir=self.options.recordings_dir,
            greet=False,  # the call runner greets once the caller's media is connected
            on_agent_text=AgentCaptions(call=call),
            hold_pcm=self.hold_pcm,
            custom_tools=self._custom.snapshot() if self._custom is not None else (),
            call_custom=self._custom,
            # Only a phone line has a keypad: browsers and WebSocket clients never open a digit collection.
            collect_digits=PhoneKeypad(sessions=self._sessions, call_id=call.call_id)
            if call.channel_name in PHONE_CHANNELS
            else None,
        )
        tools = built.tools
        return CallPlan(
            worker=built.worker,
            end_reason=lambda: "agent_ended" if tools.end_requested else None,
            before_end=built.recorder.end_of_call,
            gate=built.gate,
            handoff=built.handoff,
        )


def _fields(options: ASROptions) -> dict[str, Any]:
    return {name: getattr(options, name) for name in options.__dataclass_fields__}
