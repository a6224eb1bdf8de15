"""``voxdesk worker``: a livekit-agents worker whose jobs are Voxdesk calls.

The worker registers with the LiveKit server under ``settings.livekit.agent_name``; LiveKit dispatches a job per
room (a browser's WebRTC room, or the room its SIP service opened for a phone caller). Each job runs in its own
process (livekit-agents' process pool, ``num_idle_processes`` kept started) and:

1. has the voice runtime of ``voxdesk serve`` already started in that process (``agent.server.build_app``'s
   lifespan, SIP listener off: database, knowledge retriever, prewarmed stages, the ``VoiceService``): livekit-agents'
   per-process set-up starts it on its own thread and event loop while the process waits idle for a job, so the
   caller does not wait for the models to load (:class:`PrewarmedRuntime`);
2. finds the caller (the job's participant, else the first non-agent participant LiveKit lists in the room); a
   SIP participant's attributes give the caller's number (``sip.phoneNumber``) and the dialled number
   (``sip.trunkPhoneNumber``), which picks the persona through ``VOXDESK_TELEPHONY__ROUTES``;
3. sets the call up through ``VoiceService.admit`` + ``start_call`` (channel ``sip`` for a LiveKit SIP caller,
   ``livekit`` otherwise) with :class:`LiveKitMedia`: pipecat's ``LiveKitTransport`` joins the room with an agent
   token minted here, and the same ``build_pipeline()`` runs on it;
4. runs the call to its end and leaves the room.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Mapping
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import structlog
from livekit import api
from livekit.agents import AgentServer, JobContext, JobProcess
from livekit.protocol import agent as agent_proto
from pipecat.transports.base_transport import BaseTransport
from pipecat.transports.livekit.transport import LiveKitParams, LiveKitTransport
from prometheus_client import Counter

from agent.calls.channels import NullChannel
from agent.calls.media import CallControls, CallRequest, StartedCall
from agent.calls.runner import SAMPLE_RATE
from agent.calls.service import CallPlan, VoiceService
from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from agent.livekit.admin import USER_IDENTITY_PREFIX, credentials, livekit_api, participant_token, server_url
from agent.transports.digits import Transfer, caller_digit
from config import Settings
from control_api.problems import ProblemError
from control_api.services.personas import DEFAULT_PERSONA

log = structlog.get_logger(__name__)
T = TypeVar("T")
# LiveKit SIP's documented participant attributes (docs.livekit.io, "SIP participant attributes").
SIP_CALLER = "sip.phoneNumber"
SIP_DIALLED = "sip.trunkPhoneNumber"
SIP_TRUNK = "sip.trunkID"
SIP_KIND = api.ParticipantInfo.Kind.SIP
AGENT_KIND = api.ParticipantInfo.Kind.AGENT
# How long a job waits for its caller to show up in the room (a SIP caller joins as the job is dispatched).
CALLER_WAIT_S = 10.0
JOBS = Counter("voxdesk_livekit_jobs_total", "LiveKit jobs taken by this worker, by result.", ["result"])


def call_request(job: agent_proto.Job, caller: api.ParticipantInfo | None, routes: Mapping[str, str]) -> CallRequest:
    """What the one call setup needs, from the job's room and its caller (SIP attributes route the persona)."""
    room = job.room.name
    meta: dict[str, Any] = {"transport": "livekit", "livekit_room": room, "livekit_job": job.id}
    if caller is not None and caller.kind == SIP_KIND:
        attributes = caller.attributes
        dialled = attributes.get(SIP_DIALLED, "")
        if attributes.get(SIP_TRUNK):
            meta["trunk"] = attributes[SIP_TRUNK]
        return CallRequest(
            channel="sip",
            rate_key="trunk:livekit-sip",
            persona=routes.get(dialled, DEFAULT_PERSONA),
            meta=meta,
            caller_number=attributes.get(SIP_CALLER) or None,
        )
    identity = caller.identity if caller is not None else ""
    if identity.startswith(USER_IDENTITY_PREFIX):
        # Minted by POST /api/livekit/token for a signed-in user (LiveKit enforces a token's identity): the call
        # counts against that user's voice rate limit, as on the WebSocket stream.
        user_id = identity.removeprefix(USER_IDENTITY_PREFIX)
        return CallRequest(channel="livekit", rate_key=f"user:{user_id}", created_by=user_id, meta=meta)
    return CallRequest(channel="livekit", rate_key=f"livekit:{identity or room}", meta=meta)


async def find_caller(
    client: api.LiveKitAPI, room: str, *, timeout_s: float = CALLER_WAIT_S, poll_s: float = 0.25
) -> api.ParticipantInfo | None:
    """The first participant of ``room`` that is not an agent (LiveKit's RoomService), or None after ``timeout_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        listed = await client.room.list_participants(api.ListParticipantsRequest(room=room))
        for participant in listed.participants:
            if participant.kind != AGENT_KIND:
                return participant
        if loop.time() >= deadline:
            return None
        await asyncio.sleep(poll_s)


def sip_transfer(client: api.LiveKitAPI, *, room: str, identity: str) -> Transfer:
    """Cold-transfers a LiveKit SIP caller (livekit-sip sends the REFER): ``TransferSIPParticipant``."""

    async def transfer(target: str) -> bool:
        request = api.TransferSIPParticipantRequest(room_name=room, participant_identity=identity, transfer_to=target)
        try:
            await client.sip.transfer_sip_participant(request)
        # livekit-api's SipCallError/ServerError and aiohttp's connection errors: the call stays with the AI.
        except Exception as exc:  # noqa: BLE001 - one outcome: not transferred
            log.info("livekit_transfer_failed", error_type=type(exc).__name__)
            return False
        return True

    return transfer


class LiveKitMedia:
    """A LiveKit room's side of a call (a :class:`~agent.calls.media.CallMedia`): pipecat's ``LiveKitTransport``.

    The caller's audio is mixed into one 16 kHz stream (the pipeline runs one ASR and one VAD); the agent's audio
    is published as one microphone track. The call connects when a participant is in the room; the caller
    leaving (or the room closing) ends it; a SIP caller's DTMF goes through the one digit rule of every phone
    line (``agent.transports.digits``: stored, ``0`` asks for a person, else the cold transfer).

    Args:
        url: The LiveKit server URL.
        token: The agent's participant token for ``room``.
        room: The room's name.
        caller_identity: The caller's LiveKit identity (None: any participant leaving ends the call).
        sessions: The database sessions (DTMF digits are stored with the call).
        transfer: Cold-transfers the caller (a LiveKit SIP caller); None: no transfer.
        transfer_target: Where a DTMF ``0`` that no live handoff takes is transferred.

    """

    connected_on_answer = False

    def __init__(
        self,
        *,
        url: str,
        token: str,
        room: str,
        caller_identity: str | None,
        sessions: Sessions,
        transfer: Transfer | None = None,
        transfer_target: str | None = None,
    ) -> None:
        self._url = url
        self._token = token
        self._room = room
        self._caller = caller_identity
        self._sessions = sessions
        self._transfer = transfer
        self._transfer_target = transfer_target
        self.client = NullChannel()

    def bind(self, call: CallSession, controls: CallControls) -> BaseTransport:
        """Pipecat's LiveKit transport for the room, wired to the call's controls."""
        transport = LiveKitTransport(
            self._url,
            self._token,
            self._room,
            LiveKitParams(
                audio_in_enabled=True,
                audio_out_enabled=True,
                audio_in_sample_rate=SAMPLE_RATE,
                audio_out_sample_rate=SAMPLE_RATE,
                audio_in_user_tracks=False,
            ),
        )

        @transport.event_handler("on_participant_connected")  # type: ignore[untyped-decorator]
        async def on_joined(_transport: Any, participant_id: str) -> None:
            if self._caller is None or participant_id == self._caller:
                await controls.connected()

        @transport.event_handler("on_participant_disconnected")  # type: ignore[untyped-decorator]
        async def on_left(_transport: Any, participant_id: str) -> None:
            if self._caller is None or participant_id == self._caller:
                controls.hang_up("caller_hangup")

        @transport.event_handler("on_disconnected")  # type: ignore[untyped-decorator]
        async def on_room_closed(_transport: Any, *_args: Any) -> None:
            controls.hang_up("room_disconnected")

        @transport.event_handler("on_dtmf_event")  # type: ignore[untyped-decorator]
        async def on_dtmf(_transport: Any, data: dict[str, Any]) -> None:
            await caller_digit(
                self._sessions,
                call,
                controls,
                str(data.get("digit", "")),
                transfer=self._transfer,
                transfer_target=self._transfer_target,
            )

        return transport

    def attach(self, plan: CallPlan) -> None:
        """Nothing to attach (LiveKit's own jitter buffer and playout)."""
        del plan

    async def close(self, reason: str) -> None:
        """Nothing to close: the transport leaves the room when the pipeline stops."""
        del reason


async def start_job(
    voice: VoiceService, settings: Settings, job: agent_proto.Job, client: api.LiveKitAPI
) -> StartedCall | None:
    """Set up the call of one dispatched job (None when refused: no free line, rate limit, no caller)."""
    room = job.room.name
    caller = job.participant if job.HasField("participant") else await find_caller(client, room)
    if caller is None:
        JOBS.labels(result="no_caller").inc()
        log.info("livekit_job_no_caller", livekit_job=job.id)
        return None
    request = call_request(job, caller, settings.telephony.routes)
    try:
        await voice.admit(rate_key=request.rate_key, channel=request.channel)
    except ProblemError as problem:
        JOBS.labels(result=f"refused_{problem.status}").inc()
        log.info("livekit_job_refused", livekit_job=job.id, status=problem.status)
        return None
    token = participant_token(settings.livekit, identity=f"voxdesk-{job.id}", room=room, name="Voxdesk", agent=True)
    sip_caller = request.channel == "sip" and bool(caller.identity)
    media = LiveKitMedia(
        url=server_url(settings.livekit),
        token=token,
        room=room,
        caller_identity=caller.identity or None,
        sessions=voice.state.sessions,
        transfer=sip_transfer(client, room=room, identity=caller.identity) if sip_caller else None,
        transfer_target=settings.telephony.transfer_target,
    )
    started = await voice.start_call(request, media)
    JOBS.labels(result="started").inc()
    log.info("livekit_call_started", call_id=started.call.call_id, livekit_job=job.id, channel=request.channel)
    return started


@asynccontextmanager
async def voice_runtime(settings: Settings) -> AsyncIterator[VoiceService]:
    """The voice runtime of ``voxdesk serve`` without its HTTP listener or SIP endpoint (one per job process)."""
    from agent.server import build_app

    quiet = settings.model_copy(update={"telephony": settings.telephony.model_copy(update={"sip_port": 0})})
    app = build_app(quiet)
    async with app.router.lifespan_context(app):
        voice: VoiceService = app.state.voice
        yield voice


class PrewarmedRuntime:
    """The voice runtime of one job process, started on its own thread and event loop before the job arrives.

    livekit-agents calls the process set-up synchronously (and gives it ``initialize_process_timeout``), then runs
    the job on a loop of its own; the runtime (models, database, ``VoiceService``) is started here at set-up and
    keeps running on its thread, and the job's coroutines are run on that loop (:meth:`run`).

    Args:
        settings: The process's settings.

    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._voice: concurrent.futures.Future[VoiceService] = concurrent.futures.Future()
        self._stop = asyncio.Event()  # set on the runtime's loop (close() hands it over thread-safely)
        self._thread = threading.Thread(target=self._main, name="voxdesk-runtime", daemon=True)
        self._thread.start()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        finally:
            self._loop.close()

    async def _serve(self) -> None:
        try:
            async with voice_runtime(self.settings) as voice:
                self._voice.set_result(voice)
                await self._stop.wait()
        except Exception as exc:  # noqa: BLE001 - handed to the job, which reports it
            if not self._voice.done():
                self._voice.set_exception(exc)
            log.error("livekit_runtime_failed", error_type=type(exc).__name__)

    async def voice(self) -> VoiceService:
        """The started voice service (waits while the runtime is still starting; raises if it failed)."""
        return await asyncio.wrap_future(self._voice)

    async def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the runtime's loop and wait for it here (cancelling here cancels it there)."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self._loop))

    async def close(self, timeout_s: float = 30.0) -> None:
        """Stop the runtime (the lifespan ends every call and closes the database) and wait for its thread."""
        # A RuntimeError: the loop has already closed (the runtime failed to start).
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, timeout_s)


def prepare_process(proc: JobProcess, settings: Settings) -> None:
    """Start this job process's voice runtime now, before a job is assigned to it."""
    proc.userdata["runtime"] = PrewarmedRuntime(settings)


def setup_process(proc: JobProcess) -> None:
    """livekit-agents' per-process set-up: read the settings and start the runtime (a process takes one call)."""
    from config import load_settings

    prepare_process(proc, load_settings())


async def _run_call(runtime: PrewarmedRuntime, job: agent_proto.Job) -> None:
    # Runs on the runtime's loop: the API client's HTTP session and the call belong to that loop.
    voice = await runtime.voice()
    client = livekit_api(runtime.settings.livekit)
    try:
        started = await start_job(voice, runtime.settings, job, client)
        if started is not None:
            await started.run
    finally:
        await client.aclose()


async def entrypoint(ctx: JobContext) -> None:
    """The job entry point: one call in the dispatched room, on this process's prewarmed voice runtime."""
    runtime: PrewarmedRuntime = ctx.proc.userdata["runtime"]
    try:
        await runtime.run(_run_call(runtime, ctx.job))
    finally:
        await runtime.close()
        ctx.shutdown("call ended")


def build_server(settings: Settings, *, max_retry: int = 16) -> AgentServer:
    """The livekit-agents server that registers with ``settings.livekit.url`` and takes Voxdesk's jobs."""
    key, secret = credentials(settings.livekit)
    server = AgentServer(
        ws_url=server_url(settings.livekit),
        api_key=key,
        api_secret=secret,
        num_idle_processes=settings.livekit.num_idle_processes,
        setup_fnc=setup_process,
        max_retry=max_retry,
    )
    server.rtc_session(entrypoint, agent_name=settings.livekit.agent_name)
    return server


async def run_worker(settings: Settings, *, max_retry: int = 16) -> None:
    """Register and take jobs until stopped; raises once the server cannot be reached after ``max_retry`` tries."""
    server = build_server(settings, max_retry=max_retry)
    try:
        await server.run(devmode=settings.env != "production")
    finally:
        await server.aclose()
