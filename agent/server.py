"""Composition root of ``voxdesk serve``: the control plane plus the voice side, in one process."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from fastapi import FastAPI

from agent.calls.briefing import LLMBriefing
from agent.calls.handoff import HandoffDesk, HandoffOptions
from agent.calls.service import VoiceService
from agent.calls.tools import CustomApiCaller
from agent.livekit.tokens import livekit_token_router
from agent.livekit.webhooks import livekit_webhook_router
from agent.transports.ice_policy import CandidatePolicy
from agent.transports.sip import SipEndpoint
from agent.transports.telnyx import telnyx_router
from agent.transports.transcribe import transcribe_router
from agent.transports.twilio import twilio_router
from agent.transports.webrtc import webrtc_router
from agent.transports.websocket import ws_stream_router
from agent.wiring.knowledge import KnowledgeRetriever
from agent.wiring.pipelines import StageOptions, VoiceStages
from agent.wiring.voice_preview import StagesVoicePreview
from config import Settings
from control_api.app import create_app
from control_api.integrations.secrets import box_from_settings
from control_api.logging_setup import configure_logging
from control_api.services import analytics
from control_api.services.knowledge import KnowledgeService, register_spoken
from control_api.services.personas import register_preview
from control_api.state import AppState
from knowledge.types import Passage as KnowledgePassage
from pipelines.brain.extractive import best_sentences
from pipelines.contracts import Passage, Retriever, TextEmbedder
from pipelines.registry import backend_class

# Threads of the event loop's default pool in a voice process (see start_voice).
VOICE_THREADS = 32


def build_app(settings: Settings) -> FastAPI:
    """Build the whole server from ``settings``: API, console, voice endpoints, prewarmed voice stages."""
    configure_logging(level=settings.logging.level, json_logs=settings.logging.json_logs)
    state_holder: dict[str, AppState] = {}

    def knowledge_service() -> KnowledgeService | None:
        state = state_holder.get("state")
        return state.knowledge if state is not None else None

    retriever = KnowledgeRetriever(knowledge_service)

    async def knowledge() -> tuple[Retriever, TextEmbedder | None]:
        service = knowledge_service()
        return retriever, (service.embedder if service is not None else None)

    # The operator's custom API tools (Integration Studio), called during calls through the SSRF guard.
    custom_tools = CustomApiCaller(
        box=box_from_settings(settings.integrations),
        allowed_private_hosts=settings.integrations.allowed_private_hosts,
    )
    stages = VoiceStages(options=StageOptions.from_settings(settings), knowledge=knowledge, custom_tools=custom_tools)
    max_sentences = stages.options.brain.max_sentences

    def spoken(question: str, found: KnowledgePassage) -> str:
        # The console's "test a question" shows what the agent would say: the extractive brain's own sentence
        # choice from the passage's speakable body (registered with the control plane while this app runs).
        body = Passage(text=found.text, score=0.0, document_id="", chunk_id="", citation="", heading=found.heading).body
        return best_sentences(question, body, max_sentences=max_sentences, closeness=found.closeness)

    embed_key = settings.voice.embed_key.get_secret_value() if settings.voice.embed_key else None
    candidates = CandidatePolicy(
        announce=frozenset(settings.voice.webrtc_announce_addresses),
        keep_private=settings.env != "production",
    )
    handoffs = HandoffDesk(
        options=HandoffOptions(
            accept_timeout_s=settings.handoff.accept_timeout_s, waiting_alert_s=settings.handoff.waiting_alert_s
        ),
        asr=stages.asr,
        filter_sdp=candidates.filter_sdp,
        briefing=LLMBriefing.from_settings(settings),
    )
    voice = VoiceService(
        max_calls=settings.voice.max_concurrent_calls,
        silence_timeout_secs=settings.voice.silence_timeout_secs,
        max_call_secs=settings.voice.max_call_secs,
        embed_key=embed_key,
        pipeline_factory=stages,
        record_calls=settings.voice.record_calls,
        node=settings.voice.node_id or socket.gethostname(),
        connect_timeout_secs=settings.voice.connect_timeout_secs,
        max_connecting_per_address=settings.voice.max_connecting_per_address,
        handoffs=handoffs,
    )

    async def start_outcome_catch_up(state: AppState) -> Callable[[], Awaitable[None]]:
        return analytics.start_outcome_catch_up(state.sessions)

    async def start_voice(state: AppState) -> Callable[[], Awaitable[None]]:
        # Once per process: load the models, then open the lines.
        state_holder["state"] = state
        # A brain that words its own answers has no preview: then the passage itself stands in for what it would say.
        verbatim = backend_class("brain", settings.pipeline.llm.backend).capabilities.verbatim_answers
        register_spoken(spoken if verbatim else None)
        # aiortc encodes every call's outgoing audio on the loop's default thread pool (every 20 ms while the
        # agent speaks), next to retrieval, recording fsyncs and the like: the stock pool (CPUs + 4 threads)
        # queues those encodes behind slower work once a few calls talk at once.
        asyncio.get_running_loop().set_default_executor(
            ThreadPoolExecutor(max_workers=VOICE_THREADS, thread_name_prefix="voxdesk")
        )
        await stages.prewarm(state.sessions)
        # The persona editor's spoken preview: the calls' own synthesiser (issue 21).
        register_preview(StagesVoicePreview(lambda: stages.stages.tts, stages.options.tts))
        close_voice = await voice.startup(state)
        # Phone lines open once the models are warm (port 0: no SIP); a SIP port in use is logged, not fatal.
        sip = SipEndpoint(voice, settings.telephony, production=settings.env == "production")
        if settings.telephony.sip_port:
            await sip.start()

        async def stop() -> None:
            register_spoken(None)
            register_preview(None)
            await sip.stop()
            await close_voice()
            await retriever.drain()
            await stages.close()

        return stop

    app = create_app(
        settings,
        routers=[
            webrtc_router(voice, candidates=candidates),
            ws_stream_router(voice),
            twilio_router(voice, settings.telephony, public_url=settings.server.public_url),
            telnyx_router(voice, settings.telephony, public_url=settings.server.public_url),
            livekit_webhook_router(settings.livekit),
            livekit_token_router(settings.livekit),
            transcribe_router(stages.asr, language=settings.pipeline.asr.language),
        ],
        readiness_checks={"voice_models": stages.ready},
        # The analytics' call outcomes of calls that ended without the post-call hook (issue 21), in the background.
        startup_hooks=[start_outcome_catch_up, start_voice],
    )
    # A LiveKit worker's job process runs its call on this service (agent/livekit/worker.py).
    app.state.voice = voice
    return app
