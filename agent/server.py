"""Composition root of ``voxdesk serve``: the control plane plus the voice side, in one process."""

from __future__ import annotations

import sys

from fastapi import FastAPI
from loguru import logger as loguru_logger
from pipecat.transports.base_transport import BaseTransport

from agent.call_runner import make_worker
from agent.sessions import CallSession
from agent.standin import build_standin_pipeline
from agent.voice import CallPlan, VoiceService
from agent.webrtc import webrtc_router
from agent.ws_stream import ws_stream_router
from config import Settings
from control_api.app import create_app
from control_api.logging_setup import configure_logging
from pipelines.contracts import PersonaSpec


def _quiet_pipecat(level: str) -> None:
    # pipecat logs through loguru, with transcripts at DEBUG: keep it at WARNING unless debugging.
    loguru_logger.remove()
    loguru_logger.add(sys.stderr, level="DEBUG" if level == "DEBUG" else "WARNING")


def build_app(settings: Settings) -> FastAPI:
    """Build the whole server from ``settings``."""
    configure_logging(level=settings.logging.level, json_logs=settings.logging.json_logs)
    _quiet_pipecat(settings.logging.level)

    def pipeline_factory(*, transport: BaseTransport, call: CallSession, persona: PersonaSpec) -> CallPlan:
        del persona
        pipeline = build_standin_pipeline(transport=transport, sink=call.sink)
        return CallPlan(worker=make_worker(pipeline, call_id=call.call_id))

    embed_key = settings.voice.embed_key.get_secret_value() if settings.voice.embed_key else None
    voice = VoiceService(
        max_calls=settings.voice.max_concurrent_calls,
        silence_timeout_secs=settings.voice.silence_timeout_secs,
        max_call_secs=settings.voice.max_call_secs,
        embed_key=embed_key,
        pipeline_factory=pipeline_factory,
    )
    return create_app(settings, routers=[webrtc_router(voice), ws_stream_router(voice)], startup_hooks=[voice.startup])
