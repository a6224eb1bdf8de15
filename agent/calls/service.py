"""The voice runtime of one process: admission, the call registry, personas and per-call pipelines.

``build_app`` makes one ``VoiceService``; its ``startup`` hook runs in the API's lifespan (after
migrations) and its routers (WebRTC, WebSocket stream, transcription) take calls through it.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from pipecat.frames.frames import Frame, TTSSpeakFrame
from pipecat.pipeline.worker import PipelineWorker
from pipecat.transports.base_transport import BaseTransport

from agent.calls.channels import ClientChannel
from agent.calls.consent import RecordingConsent
from agent.calls.handoff import HandoffDesk
from agent.calls.media import CallControls, CallMedia, CallRequest, StartedCall, rate_limit_name
from agent.calls.registry import CallRegistry
from agent.calls.runner import run_call
from agent.calls.session import CallSession
from agent.metrics import CALLS_REJECTED
from control_api import ratelimit
from control_api.problems import ProblemError
from control_api.services import calls as call_service
from control_api.services import personas as persona_service
from control_api.state import AppState
from pipelines.contracts import PersonaSpec
from pipelines.processors.audio_gate import AgentAudioGate
from pipelines.processors.handoff_gate import HandoffGate

log = structlog.get_logger(__name__)
# The outcome of a call whose caller's media never connected: a line taken, no conversation.
NOT_CONNECTED = "not_connected"


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A call's pipeline worker, ready to run, and how to tell why it finished by itself.

    ``before_end`` stores what the pipeline holds (the agent turn in progress) before the call's end is stored.
    """

    worker: PipelineWorker
    end_reason: Callable[[], str | None] | None = None
    before_end: Callable[[], Awaitable[None]] | None = None
    gate: AgentAudioGate | None = None
    handoff: HandoffGate | None = None


class PipelineFactory(Protocol):
    """Builds one call's pipeline around its transport (cheap: stages are prewarmed once)."""

    def __call__(self, *, transport: BaseTransport, call: CallSession, persona: PersonaSpec) -> CallPlan:
        """The pipeline worker for ``call`` (transport input first, transport output last)."""
        ...


@dataclass(frozen=True, slots=True)
class ActivePersona:
    """The persona a call runs with, and the stored version it came from."""

    spec: PersonaSpec
    persona_id: str | None


class VoiceService:
    """Admission control, call registry and pipeline runs for every voice channel of the process.

    Args:
        max_calls: Concurrent-call cap.
        silence_timeout_secs: Silence that ends a call.
        max_call_secs: Hard limit on a call's length.
        embed_key: When set, the public caller page must present it.
        pipeline_factory: Builds a call's pipeline.
        record_calls: Record calls whose caller heard the recording notice (their consent is stored).
        node: This process's identity, stamped on every call it opens.
        connect_timeout_secs: A call whose media has not connected this long after its answer is released.
        max_connecting_per_address: Calls one rate key (an address, a user) may hold while they connect.
        handoffs: The warm-handoff desk (``None``: calls are never handed to a person live).

    """

    def __init__(
        self,
        *,
        max_calls: int,
        silence_timeout_secs: float,
        max_call_secs: float,
        embed_key: str | None,
        pipeline_factory: PipelineFactory,
        record_calls: bool = True,
        node: str = "local",
        connect_timeout_secs: float = 10.0,
        max_connecting_per_address: int = 2,
        handoffs: HandoffDesk | None = None,
    ) -> None:
        self.node = node
        self.max_calls = max_calls
        self.silence_timeout_secs = silence_timeout_secs
        self.max_call_secs = max_call_secs
        self._embed_key = embed_key
        self.pipeline_factory = pipeline_factory
        self.record_calls = record_calls
        self.connect_timeout_secs = connect_timeout_secs
        self.max_connecting_per_address = max_connecting_per_address
        self._state: AppState | None = None
        self._registry: CallRegistry | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.handoffs = handoffs

    @property
    def state(self) -> AppState:
        """The API's state (available once started)."""
        if self._state is None:
            raise RuntimeError("the voice service has not started")
        return self._state

    @property
    def registry(self) -> CallRegistry:
        """Live calls of this process (available once started)."""
        if self._registry is None:
            raise RuntimeError("the voice service has not started")
        return self._registry

    async def startup(self, state: AppState) -> Callable[[], Awaitable[None]]:
        """Startup hook: bind to the API's state and seed the default persona."""
        self._state = state
        self._registry = CallRegistry(
            sessions=state.sessions,
            max_calls=self.max_calls,
            silence_timeout_secs=self.silence_timeout_secs,
            max_call_secs=self.max_call_secs,
            node=self.node,
        )
        async with state.sessions() as session:
            await persona_service.ensure_default(session)
            orphaned = await call_service.fail_orphaned_calls(session, node=self.node)
        if orphaned:
            log.warning("orphaned_calls_closed", count=len(orphaned), node=self.node)
        if self.handoffs is not None:
            self.handoffs.start(state.sessions, node=self.node)
        return self.shutdown

    async def shutdown(self) -> None:
        """End every call and wait for their pipelines."""
        if self.handoffs is not None:
            self.handoffs.stop()
        if self._registry is not None:
            await self._registry.close_all("server_shutdown")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def check_embed_key(self, presented: str | None, *, channel: str) -> None:
        """403 problem unless the configured embed key (if any) is presented."""
        if self._embed_key is None:
            return
        if presented is None or not hmac.compare_digest(presented.encode(), self._embed_key.encode()):
            CALLS_REJECTED.labels(channel=channel, reason="embed_key").inc()
            raise ProblemError(403, "A valid embed key is required to place a call.", type_="embed-key-required")

    async def admit(self, *, rate_key: str, channel: str) -> None:
        """Count one call against the voice rate limit and check for a free line (429 / 503 problems).

        A caller may hold only a few lines whose media has not connected yet: offers that never connect would
        otherwise take every line until they time out.
        """
        self.registry.check_capacity(channel)
        if self.registry.connecting(rate_key) >= self.max_connecting_per_address:
            CALLS_REJECTED.labels(channel=channel, reason="connecting").inc()
            raise ProblemError(
                429,
                "Too many calls from this address are still connecting; try again shortly.",
                type_="calls-connecting",
                headers={"Retry-After": str(max(1, round(self.connect_timeout_secs)))},
            )
        try:
            await ratelimit.hit(self.state.limiter, rate_limit_name(rate_key), rate_key)
        except ProblemError:
            CALLS_REJECTED.labels(channel=channel, reason="rate_limit").inc()
            raise

    async def active_persona(self, name: str = persona_service.DEFAULT_PERSONA) -> ActivePersona:
        """The active version of persona ``name`` (the built-in default if the database has none)."""
        async with self.state.sessions() as session:
            row = await persona_service.find_active(session, name)
        if row is None:
            return ActivePersona(spec=PersonaSpec(), persona_id=None)
        spec = PersonaSpec(
            name=row.display_name,
            greeting=row.greeting,
            consent_notice=row.consent_notice,
            voice=row.voice,
            language=row.language,
            instructions=row.instructions,
        )
        return ActivePersona(spec=spec, persona_id=row.id)

    async def open_call(
        self,
        *,
        channel: str,
        client: ClientChannel,
        persona: ActivePersona,
        created_by: str | None = None,
        meta: dict[str, Any] | None = None,
        caller_number: str | None = None,
    ) -> CallSession:
        """Store the call record (its first packet has arrived) and take a line."""
        call = await self.registry.open(
            channel=channel,
            client=client,
            persona_id=persona.persona_id,
            created_by=created_by,
            meta=meta,
            caller_number=caller_number,
        )
        call.sink.consent = RecordingConsent(notice=persona.spec.consent_notice, record_calls=self.record_calls)
        return call

    async def start_call(self, request: CallRequest, media: CallMedia) -> StartedCall:
        """Set up one call for ``media``: the one call setup every transport uses.

        The caller must have been admitted (:meth:`admit`) first: admission comes before anything a transport
        checks of its own, so that every attempt counts. This stores the call record, takes a line, binds the
        transport, builds the pipeline and returns the coroutine that runs it; the transport runs it inline
        (a WebSocket handler) or spawns it (:meth:`spawn`, a signalling request that must answer now).

        Raises:
            ProblemError: 503 when no line is free.

        """
        persona = await self.active_persona(request.persona)
        call = await self.open_call(
            channel=request.channel,
            client=media.client,
            persona=persona,
            created_by=request.created_by,
            meta=dict(request.meta),
            caller_number=request.caller_number,
        )
        call.rate_key = request.rate_key
        controls = CallControls(call=call, voice=self)
        try:
            transport = media.bind(call, controls)
            call.on_stop(media.close)
            plan = self.pipeline_factory(transport=transport, call=call, persona=persona.spec)
            media.attach(plan)
            if plan.before_end is not None:
                call.before_end(plan.before_end)
            if self.handoffs is not None and plan.handoff is not None:
                policy = await self.handoffs.policy(request.persona)
                call.handoff = self.handoffs.attach(call=call, gate=plan.handoff, worker=plan.worker, policy=policy)
        except Exception:
            await call.end("pipeline_error", failed=True)
            raise
        if media.connected_on_answer:
            await controls.connected()
        else:
            self.spawn(self._release_unconnected(call, controls), name=f"connect-{call.call_id}")
        run = run_call(
            call,
            plan.worker,
            initial_frames=self.greeting_frames(persona.spec),
            client_ready=controls.media_ready,
            end_reason=plan.end_reason,
        )
        return StartedCall(call=call, run=run)

    async def _release_unconnected(self, call: CallSession, controls: CallControls) -> None:
        # A line answered whose media never arrives (an unreachable ICE candidate, a caller gone) is freed soon.
        try:
            await asyncio.wait_for(controls.media_ready.wait(), timeout=self.connect_timeout_secs)
        except TimeoutError:
            log.info("call_media_timeout", call_id=call.call_id, timeout_s=self.connect_timeout_secs)
            await call.end("media_timeout", outcome=NOT_CONNECTED)

    def greeting_frames(self, persona: PersonaSpec) -> list[Frame]:
        """What the agent says first: the greeting, then the recording/consent notice."""
        return [TTSSpeakFrame(text=f"{persona.greeting.strip()} {persona.consent_notice.strip()}")]

    def spawn(self, coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
        """Run a call's coroutine as a task the service owns (cancelled on shutdown)."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
