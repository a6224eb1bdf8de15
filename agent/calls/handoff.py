"""Warm handoff of a live call to a human agent: triggers, hold, the queue, accept, the human's audio, fallback.

One :class:`HandoffDesk` per voice process (registered with the control plane as its
:class:`~control_api.services.handoffs.LiveHandoffs`), one :class:`CallHandoff` per call.

The entry point every trigger uses is :meth:`CallHandoff.request` (through ``CallSession.handoff``): the policy
phrases and strong negative sentiment of a caller turn, repeated "not found" answers, the brain's
``transfer_to_human`` tool, and a transport's :meth:`agent.calls.media.CallControls.request_handoff` (DTMF 0 on
phone lines). Then:

1. the AI goes silent (the handoff gate holds the caller's turns back from the brain), says it is connecting the
   caller, and hold audio loops; the caller is still transcribed;
2. the handoff is queued with its briefing and offered to every available agent (``handoff.requested``);
   ``handoff.waiting`` once it has waited ``waiting_alert_s``;
3. an agent accepts (``handoff.accepted``) and joins the call's audio from the desk (:class:`DeskLeg`): the hold
   audio stops, each side hears the other, the human's turns are transcribed as role ``human``;
4. nobody within ``accept_timeout_s``, every agent declined, or nobody available: the AI comes back, apologises,
   and a callback request is recorded (a ticket through a ticketing integration);
5. the caller hangs up while queued: the handoff ends ``abandoned`` and the desks stop offering it.

A persona whose policy names ``cold_transfer_to`` hands over by a cold transfer instead: the caller is told, and a
transport that can transfer (SIP: REFER, through :attr:`CallHandoff.cold_transfer`) sends the call there
(``cold_transfer`` → ``transferred`` in the timeline); a caller whose line cannot be transferred (browser,
WebSocket) is told so and goes the warm way above (``cold_transfer_unavailable`` first in the timeline), as does a
transfer that fails or is not confirmed within ``accept_timeout_s`` (``transfer_failed``).

With an LLM brain configured the briefing's summary is written by that model (:mod:`agent.calls.briefing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
import wave
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import structlog
from pipecat.frames.frames import TTSSpeakFrame
from pipecat.pipeline.worker import PipelineWorker
from prometheus_client import Counter, Gauge, Histogram

from agent.calls.briefing import LLMBriefing
from agent.calls.handoff_media import DeskLeg, HumanTranscriber
from agent.calls.person_request import asks_for_person
from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from control_api.schemas.handoffs import HandoffPolicyModel
from control_api.services import handoffs as service
from control_api.services import sentiment
from pipelines.asr.base import ASRBackend
from pipelines.contracts import CallEventRecord, TurnRecord
from pipelines.processors.handoff_gate import HandoffGate
from pipelines.tools import SEARCH

log = structlog.get_logger(__name__)

HOLD_AUDIO = Path(__file__).resolve().parent.parent / "assets" / "hold.wav"
HOLD_MESSAGE = "I'm connecting you with a member of our team now. Please hold."
TRANSFER_MESSAGE = "I'm transferring your call to a member of our team now. Please hold."
NO_TRANSFER_MESSAGE = (
    "I can't transfer this call to another line, so I'm connecting you with a member of our team here. Please hold."
)
# What the AI says when it takes the call back: why, then what happens next. A callback is promised only when the
# call has a number to call back (a phone line's caller id); otherwise the request is left with the team, no more.
_NOBODY_NOW = "I'm sorry, nobody from our team could take your call just now."
RETURN_REASONS = {
    "timed_out": _NOBODY_NOW,
    "declined": _NOBODY_NOW,
    "no_agents": "I'm sorry, nobody from our team is available right now.",
}
CALLBACK_PROMISE = "I've asked them to call you back on this number."
REQUEST_LEFT = "I've passed your request on to them with what you've told me."
RETURN_CLOSE = "Is there anything else I can help you with meanwhile?"


def return_message(status: str, *, callback_number: bool) -> str:
    """What the AI says when nobody took the call (``status``), promising a callback only with a number to call."""
    reason = RETURN_REASONS.get(status, _NOBODY_NOW)
    return f"{reason} {CALLBACK_PROMISE if callback_number else REQUEST_LEFT} {RETURN_CLOSE}"


# A person who accepted has at least this long to join the call's audio before the AI takes the call back.
JOIN_TIMEOUT_S = 30.0

HANDOFFS = Counter("voxdesk_handoffs_total", "Handoffs requested, by trigger.", ["source"])
HANDOFF_OUTCOMES = Counter(
    "voxdesk_handoff_outcomes_total",
    "How handoffs ended: accepted, timed_out, declined, no_agents, abandoned, transferred, transfer_failed.",
    ["outcome"],
)
HANDOFFS_QUEUED = Gauge("voxdesk_handoffs_queued", "Handoffs of this process waiting for a person now.")
HANDOFF_WAIT = Histogram(
    "voxdesk_handoff_wait_seconds",
    "From the request to a person's accept.",
    buckets=(1, 2, 5, 10, 20, 30, 60, 120, 300),
)

# A cold transfer the transport was asked to make (True: sent, e.g. the REFER went out; a REST API's may be awaited).
ColdTransfer = Callable[[str], bool | Awaitable[bool]]

# What triggered a handoff: phrase | tool | not_found | sentiment | dtmf | api (stored on the handoff).
Source = str


def load_hold_pcm(path: Path = HOLD_AUDIO, *, sample_rate: int = 16000) -> bytes:
    """The hold audio as 16-bit mono PCM at ``sample_rate`` (``ValueError`` when the file is another format)."""
    with wave.open(str(path), "rb") as handle:
        if handle.getnchannels() != 1 or handle.getsampwidth() != 2 or handle.getframerate() != sample_rate:
            raise ValueError(f"{path} must be {sample_rate} Hz mono 16-bit (see agent/assets/make_hold.sh)")
        return handle.readframes(handle.getnframes())


@dataclass(frozen=True, slots=True)
class HandoffOptions:
    """Process-wide handoff settings (from ``settings.handoff``).

    Attributes:
        accept_timeout_s: A queued handoff nobody accepts this long is taken back by the AI.
        waiting_alert_s: A handoff queued this long emits ``handoff.waiting``.

    """

    accept_timeout_s: float = 60.0
    waiting_alert_s: float = 20.0


def caller_turn_trigger(text: str, policy: HandoffPolicyModel) -> tuple[tuple[str, Source] | None, float | None]:
    """Whether a caller turn hands the call over (reason, source), and its sentiment score when it was scored.

    The policy's phrases come first (a request for a person, ``agent.calls.person_request``); then an upset caller
    in a turn that asks nothing: VADER's compound at or below the threshold, or the caller saying they are upset or
    judging the situation or the company in strongly negative words (``sentiment.voices_upset``). A question is
    answered whatever its subject's words score ("what if my parcel arrives broken"): the brain offers a person
    when it finds nothing, and repeated "not found" answers hand over.
    """
    if not policy.enabled:
        return None, None
    if policy.phrase_trigger and asks_for_person(text, policy.phrases):
        return ("caller asked for a person", "phrase"), None
    if not policy.sentiment_trigger:
        return None, None
    score = sentiment.score(text)
    upset = score <= policy.sentiment_threshold or sentiment.voices_upset(text)
    if upset and not sentiment.holds_question(text):
        return ("strongly negative sentiment", "sentiment"), score
    return None, score


@dataclass
class _Timing:
    """Moments of one handoff (monotonic), for the benchmark and the metrics."""

    requested: float | None = None
    accepted: float | None = None
    two_way: float | None = None
    extra: dict[str, float] = field(default_factory=dict)


class CallHandoff:
    """The handoff of one call (at most one per call).

    Args:
        desk: The process's handoff desk.
        call: The call.
        gate: The call pipeline's handoff gate.
        worker: The call's pipeline worker (the AI's announcements are queued on it).
        policy: The persona's triggers and thresholds.

    """

    def __init__(
        self,
        *,
        desk: HandoffDesk,
        call: CallSession,
        gate: HandoffGate,
        worker: PipelineWorker,
        policy: HandoffPolicyModel,
    ) -> None:
        self._desk = desk
        self.call = call
        self.gate = gate
        self._worker = worker
        self.policy = policy
        self.state: Literal[
            "idle", "requesting", "transferring", "queued", "accepted", "human", "returned", "ended"
        ] = "idle"
        # Set by a transport that can move the call elsewhere (SIP: REFER); None: the line cannot be transferred.
        self.cold_transfer: ColdTransfer | None = None
        self._transferred = asyncio.Event()  # the call ended while a cold transfer was under way
        self._transfer_status: int | None = None  # the far end's final failure of the transfer (SIP: NOTIFY 486 …)
        self.handoff_id: str | None = None
        self.agent_user_id: str | None = None
        self._queued = asyncio.Event()
        self._wake = asyncio.Event()
        self._joined = asyncio.Event()  # the person's audio arrived, or the call ended
        self._declined = False
        self._not_found = 0
        self._last_sentiment: float | None = None
        self._leg: DeskLeg | None = None
        self._transcriber: HumanTranscriber | None = None
        self._task: asyncio.Task[None] | None = None
        self.timing = _Timing()
        gate.turn_listeners.append(self._on_caller_turn)
        call.sink.event_listeners.append(self._on_event)
        call.on_stop(self._on_call_end)

    # --- triggers ---

    def _on_caller_turn(self, text: str) -> None:
        """A caller turn, before the brain sees it: the phrase and sentiment triggers; the desk's live transcript."""
        if self.state in ("accepted", "human"):
            self._publish_transcript("caller", text)
        if self.state != "idle" or not self.policy.enabled:
            return
        decision, score = caller_turn_trigger(text, self.policy)
        if score is not None:
            self._last_sentiment = score
        if decision is not None:
            self.trigger(*decision)

    def _on_event(self, record: CallEventRecord) -> None:
        """A call event: counts the knowledge base's "not found" answers."""
        data = record.data
        if record.kind != "tool_result" or data.get("tool") != SEARCH or data.get("found") is not False:
            return
        self._not_found += 1
        policy = self.policy
        if (
            self.state == "idle"
            and policy.enabled
            and policy.not_found_trigger
            and self._not_found >= policy.not_found_threshold
        ):
            self.trigger(f"{self._not_found} questions not found in the knowledge base", "not_found")

    def trigger(self, reason: str, source: Source, *, speak: bool = True) -> bool:
        """Start the handoff now (synchronously silences the AI); False when one is under way or handoffs are off."""
        if self.state != "idle" or not self.policy.enabled or self.call.ended:
            return False
        self.state = "requesting"
        self.timing.requested = time.monotonic()
        HANDOFFS.labels(source=source).inc()
        self.gate.set_mode("hold")
        self._task = asyncio.get_running_loop().create_task(
            self._run(reason, source, speak), name=f"handoff-{self.call.call_id}"
        )
        log.info("handoff_triggered", call_id=self.call.call_id, source=source)
        return True

    async def request(self, reason: str, *, source: Source = "api", speak: bool = True) -> str | None:
        """Hand the call to a person: the one entry point of every trigger (DTMF 0, the brain's tool, the API).

        Returns the handoff's id once it is queued (the one under way, if any); ``None`` when handoffs are off for
        the persona (or for this trigger), or the call has ended.
        """
        if source == "tool" and not self.policy.tool_trigger:
            return None
        if source == "dtmf" and not self.policy.dtmf_trigger:
            return None
        if self.state == "idle" and not self.trigger(reason, source, speak=speak):
            return None
        if self.state in ("returned", "ended"):
            return self.handoff_id
        await self._queued.wait()
        return self.handoff_id

    def returned(self) -> bool:
        """Whether the AI has the call back because nobody took it (a callback request is recorded)."""
        return self.state == "returned"

    # --- the flow ---

    async def _speak(self, text: str) -> None:
        await self._worker.queue_frames([TTSSpeakFrame(text)])

    async def _briefing(self, reason: str, source: Source) -> dict[str, Any]:
        """The briefing (the turns so far): extractive, or with the LLM's summary when one is configured."""
        await self.call.sink.flush()
        async with self._desk.sessions() as session:
            briefing = await service.build_briefing(
                session, self.call.call_id, reason=reason, sentiment=self._last_sentiment, source=source
            )
        writer = self._desk.briefing
        if writer is not None:
            briefing = await writer.apply(briefing, call_id=self.call.call_id)
        return briefing

    async def _transfer_cold(
        self, target: str, transfer: ColdTransfer, reason: str, source: Source, speak: bool
    ) -> tuple[str, dict[str, Any]] | None:
        """Cold-transfer the call to ``target``; ``None`` once it has gone, else the step the warm path records."""
        if speak:
            await self._speak(TRANSFER_MESSAGE)
        briefing = await self._briefing(reason, source)
        desk = self._desk
        async with desk.sessions() as session:
            handoff = await service.start_transfer(
                session,
                call_id=self.call.call_id,
                reason=reason,
                source=source,
                briefing=briefing,
                target=target,
                node=desk.node,
            )
        self.handoff_id = handoff.id
        desk.track(self)
        self.state = "transferring"
        self.call.outcome_hint = "handed_off"
        self._queued.set()
        if speak:
            await self.gate.spoken()  # the caller hears why before their phone is told to dial
        if self.call.ended:
            return None
        try:
            result = transfer(target)
            sent = bool(await result) if inspect.isawaitable(result) else bool(result)
        except Exception as exc:  # noqa: BLE001 - a transport's failure sends the call the warm way
            log.warning("handoff_cold_transfer_error", call_id=self.call.call_id, error_type=type(exc).__name__)
            sent = False
        if sent:
            # The transport ends the call once the far end confirms the transfer (SIP: NOTIFY 200 → "transferred").
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._transferred.wait(), timeout=self._desk.options.accept_timeout_s)
            if self.call.ended or (self._transferred.is_set() and self._transfer_status is None):
                return None
        async with desk.sessions() as session:
            await service.end_transfer(session, handoff.id, "failed", sent=sent, status_code=self._transfer_status)
        desk.untrack(self)
        HANDOFF_OUTCOMES.labels(outcome="transfer_failed").inc()
        log.warning("handoff_cold_transfer_failed", call_id=self.call.call_id, sent=sent)
        self.state = "requesting"
        self.handoff_id = None
        return "transfer_failed", {"to": target}

    def transfer_failed(self, status: int) -> None:
        """The transport says the cold transfer failed (SIP: a NOTIFY with a final non-2xx): the warm way now."""
        if self.state == "transferring":
            self._transfer_status = status
            self._transferred.set()

    async def _run(self, reason: str, source: Source, speak: bool) -> None:
        call_id = self.call.call_id
        desk = self._desk
        before: list[tuple[str, dict[str, Any]]] = []
        try:
            target = self.policy.cold_transfer_to
            if target is not None and self.cold_transfer is not None:
                failed = await self._transfer_cold(target, self.cold_transfer, reason, source, speak)
                if failed is None:
                    return
                before.append(failed)
                speak = False  # the caller was told already; the hold audio plays on
            elif target is not None:
                before.append(("cold_transfer_unavailable", {"to": target, "channel": self.call.channel_name}))
            # "Please hold" only when someone may take the call: with nobody available the apology comes next.
            async with desk.sessions() as session:
                someone = bool(await service.available_agents(session))
            if speak and someone:
                await self._speak(NO_TRANSFER_MESSAGE if target is not None else HOLD_MESSAGE)
            briefing = await self._briefing(reason, source)  # the turns so far
            async with desk.sessions() as session:
                handoff = await service.queue_handoff(
                    session,
                    call_id=call_id,
                    reason=reason,
                    source=source,
                    briefing=briefing,
                    queue=self.policy.queue,
                    priority=self.policy.priority,
                    node=desk.node,
                    before=before,
                )
            self.handoff_id = handoff.id
            desk.track(self)
            self.call.outcome_hint = "handed_off"
            if handoff.status == "no_agents":
                # A brain that asked for the handoff (``speak=False``) says itself that nobody could be reached.
                await self._ai_back("no_agents", speak=speak)
                self._queued.set()
                return
            if speak and not someone:  # a person became available meanwhile
                await self._speak(NO_TRANSFER_MESSAGE if target is not None else HOLD_MESSAGE)
            self.state = "queued"
            HANDOFFS_QUEUED.inc()
            self._queued.set()
            try:
                await self._wait_for_a_person()
            finally:
                HANDOFFS_QUEUED.dec()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a failed handoff gives the call back to the AI
            log.error("handoff_failed", call_id=call_id, error_type=type(exc).__name__)
            self._queued.set()
            if not self.call.ended and self.state in ("requesting", "transferring", "queued"):
                self.state = "returned"
                self.gate.set_mode("ai")
                await self._speak(f"{_NOBODY_NOW} {RETURN_CLOSE}")  # no callback was recorded

    async def _wait_for_a_person(self) -> None:
        assert self.handoff_id is not None
        options = self._desk.options
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + options.accept_timeout_s
        alert_at = started + options.waiting_alert_s
        alerted = alert_at >= deadline
        while self.state == "queued" and not self._declined:
            now = loop.time()
            if now >= deadline:
                break
            until = deadline if alerted else min(deadline, alert_at)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=max(0.0, until - now))
            except TimeoutError:
                if not alerted and loop.time() >= alert_at:
                    alerted = True
                    async with self._desk.sessions() as session:
                        await service.mark_waiting(session, self.handoff_id)
        if self.state == "accepted":
            # The desk's browser needs a moment to join (microphone, ICE): never less than JOIN_TIMEOUT_S.
            await self._wait_for_audio(max(options.accept_timeout_s, JOIN_TIMEOUT_S))
        if self.state != "queued":
            return  # accepted (or the caller left)
        status = "declined" if self._declined else "timed_out"
        async with self._desk.sessions() as session:
            ended = await service.end_unaccepted(session, self.handoff_id, status)
        if ended is None:
            return  # a person accepted at the last moment
        await self._ai_back(status)

    async def _wait_for_audio(self, timeout_s: float) -> None:
        """A person accepted but their audio never joined: after the same timeout the AI takes the call back."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._joined.wait(), timeout=timeout_s)
        if self.state == "accepted" and not self.call.ended:
            await self._note("no_audio")
            await self._ai_back("no_audio")

    async def _ai_back(self, status: str, *, speak: bool = True) -> None:
        """Nobody took the call: a callback request is recorded with the briefing, and the AI speaks again.

        ``speak=False``: the caller is told by whoever asked for the handoff (the brain's transfer tool).
        """
        assert self.handoff_id is not None
        self.state = "returned"
        HANDOFF_OUTCOMES.labels(outcome=status).inc()
        async with self._desk.sessions() as session:
            await service.note(session, self.handoff_id, "ai_returned")
            handoff = await service.get_handoff(session, self.handoff_id)
            callback = await service.record_callback(session, handoff, reason=status)
        self.gate.set_mode("ai")
        if speak:
            await self._speak(return_message(status, callback_number=bool(callback.phone)))
        self.timing.extra["ai_back"] = time.monotonic()
        self._desk.untrack(self)
        log.info("handoff_returned_to_ai", call_id=self.call.call_id, status=status)

    # --- what people do (through the desk) ---

    def on_accepted(self, user_id: str) -> None:
        """A person accepted: the hold audio plays on until their audio joins."""
        if self.state != "queued":
            return
        self.state = "accepted"
        self.agent_user_id = user_id
        self.timing.accepted = time.monotonic()
        if self.timing.requested is not None:
            HANDOFF_WAIT.observe(self.timing.accepted - self.timing.requested)
        HANDOFF_OUTCOMES.labels(outcome="accepted").inc()
        self._wake.set()

    def on_all_declined(self) -> None:
        """Everyone offered the handoff declined it: the AI takes the call back now."""
        if self.state == "queued":
            self._declined = True
            self._wake.set()

    async def join(self, user_id: str, sdp: str) -> str:
        """Bridge the person's browser into the call; returns the SDP answer (``LookupError``: not theirs now)."""
        if self.state not in ("accepted", "human") or self.agent_user_id != user_id or self.call.ended:
            raise LookupError("no accepted handoff of this person on this call")
        if self._leg is not None:
            await self._leg.close()
        self._transcriber = HumanTranscriber(
            asr=self._desk.asr(), write=self._write_human_turn, call_id=self.call.call_id
        )
        leg = DeskLeg(on_audio=self._human_audio, call_id=self.call.call_id, filter_sdp=self._desk.filter_sdp)
        answer = await leg.answer(sdp)
        self._leg = leg
        self.gate.caller_audio = leg.to_human.push
        return answer

    async def _human_audio(self, pcm: bytes) -> None:
        if self.gate.mode == "hold" and self.state == "accepted":
            # The person's audio has arrived: the hold audio stops, the two parties hear each other.
            self.state = "human"
            self._joined.set()
            self.gate.set_mode("human")
            self.timing.two_way = time.monotonic()
            asyncio.get_running_loop().create_task(self._note("audio_connected"))
            await self.call.client.send({"type": "event", "kind": "handoff", "status": "human_joined"})
        await self.gate.feed_human(pcm)
        if self._transcriber is not None:
            self._transcriber.feed(pcm)

    async def _write_human_turn(self, text: str, started: datetime) -> None:
        next_seq = self.gate.next_seq
        if next_seq is None:
            return
        await self.call.sink.turn(
            TurnRecord(seq=next_seq(), role="human", text=text, started_at=started, ended_at=datetime.now(UTC))
        )
        self._publish_transcript("human", text)

    def _publish_transcript(self, role: str, text: str) -> None:
        if self.handoff_id is None:
            return
        service.BROKER.publish(
            {
                "type": "transcript",
                "handoff_id": self.handoff_id,
                "call_id": self.call.call_id,
                "agent_user_id": self.agent_user_id,
                "role": role,
                "text": text,
            }
        )

    async def _note(self, status: str) -> None:
        if self.handoff_id is None:
            return
        try:
            async with self._desk.sessions() as session:
                await service.note(session, self.handoff_id, status)
        except Exception as exc:  # noqa: BLE001 - a timeline step must not break the call
            log.warning("handoff_note_failed", call_id=self.call.call_id, error_type=type(exc).__name__)

    async def on_completed(self) -> None:
        """The person wrapped up: their audio leaves, and the call ends if the caller is still on the line."""
        await self._close_leg()
        self.state = "ended"
        self._desk.untrack(self)
        if not self.call.ended:
            await self.call.end("handoff_completed", outcome="handed_off")

    async def _close_leg(self) -> None:
        self.gate.caller_audio = None
        if self._leg is not None:
            leg, self._leg = self._leg, None
            await leg.close()
        if self._transcriber is not None:
            await self._transcriber.drain()

    async def _on_call_end(self, reason: str) -> None:
        """The call ended: a queued handoff is ``abandoned``; a person on the call is told the caller left."""
        state, self.state = self.state, "ended"
        self._wake.set()
        self._joined.set()
        if state == "transferring":
            self._transferred.set()
        if self._task is not None and state == "requesting":
            await asyncio.sleep(0)  # let the request finish queueing (it ends below as abandoned)
        try:
            if self.handoff_id is not None and state == "transferring":
                status = "transferred" if reason == "transferred" else "failed"
                async with self._desk.sessions() as session:
                    if await service.end_transfer(session, self.handoff_id, status, end_reason=reason) is not None:
                        HANDOFF_OUTCOMES.labels(outcome=status if status == "transferred" else "transfer_failed").inc()
            elif self.handoff_id is not None and state in ("requesting", "queued"):
                async with self._desk.sessions() as session:
                    if await service.end_unaccepted(session, self.handoff_id, "abandoned") is not None:
                        HANDOFF_OUTCOMES.labels(outcome="abandoned").inc()
            elif self.handoff_id is not None and state in ("accepted", "human"):
                await self._note("caller_left")
                service.BROKER.publish(
                    {
                        "type": "call_ended",
                        "handoff_id": self.handoff_id,
                        "call_id": self.call.call_id,
                        "agent_user_id": self.agent_user_id,
                    }
                )
            await self._close_leg()
        except Exception as exc:  # noqa: BLE001 - the call's end must go on
            log.warning("handoff_end_failed", call_id=self.call.call_id, error_type=type(exc).__name__)
        if self._task is not None and not self._task.done() and self._task is not asyncio.current_task():
            self._task.cancel()
        self._desk.untrack(self)


class HandoffDesk:
    """The process's live handoffs: the control plane's :class:`~control_api.services.handoffs.LiveHandoffs`.

    Args:
        options: Timeout, waiting alert, hold audio.
        asr: Gives the process's prewarmed recogniser (the human's turns), if any.
        briefing: Writes the briefing's summary with the configured LLM (``None``: the extractive one).
        filter_sdp: Keeps only the ICE candidates this server may announce (the callers' policy).

    """

    def __init__(
        self,
        *,
        options: HandoffOptions,
        asr: Callable[[], ASRBackend | None] = lambda: None,
        filter_sdp: Callable[[str], str] | None = None,
        briefing: LLMBriefing | None = None,
    ) -> None:
        self.options = options
        self.asr = asr
        self.briefing = briefing
        self.filter_sdp = filter_sdp
        self.node: str | None = None
        self._sessions: Sessions | None = None
        self._by_id: dict[str, CallHandoff] = {}

    @property
    def sessions(self) -> Sessions:
        """The database session factory (once started)."""
        if self._sessions is None:
            raise RuntimeError("the handoff desk has not started")
        return self._sessions

    def start(self, sessions: Sessions, *, node: str) -> None:
        """Bind to the database and register with the control plane."""
        self._sessions = sessions
        self.node = node
        service.register_live(self)

    def stop(self) -> None:
        """Unregister from the control plane."""
        if service.live() is self:
            service.register_live(None)

    async def policy(self, persona_name: str) -> HandoffPolicyModel:
        """The persona's handoff policy (the defaults when the database cannot say)."""
        try:
            async with self.sessions() as session:
                return await service.get_policy(session, persona_name)
        except Exception as exc:  # noqa: BLE001 - a call must start even if its policy cannot be read
            log.warning("handoff_policy_read_failed", error_type=type(exc).__name__)
            return HandoffPolicyModel()

    def attach(
        self, *, call: CallSession, gate: HandoffGate, worker: PipelineWorker, policy: HandoffPolicyModel
    ) -> CallHandoff:
        """The handoff controller of a new call."""
        return CallHandoff(desk=self, call=call, gate=gate, worker=worker, policy=policy)

    def track(self, handoff: CallHandoff) -> None:
        """Make a queued handoff reachable by id."""
        if handoff.handoff_id is not None:
            self._by_id[handoff.handoff_id] = handoff

    def untrack(self, handoff: CallHandoff) -> None:
        """Forget a finished handoff."""
        if handoff.handoff_id is not None and self._by_id.get(handoff.handoff_id) is handoff:
            del self._by_id[handoff.handoff_id]

    def get(self, handoff_id: str) -> CallHandoff | None:
        """The live handoff with this id, if this process carries its call."""
        return self._by_id.get(handoff_id)

    # --- LiveHandoffs ---

    async def accepted(self, handoff_id: str, user_id: str) -> None:
        """A person accepted the handoff."""
        handoff = self._by_id.get(handoff_id)
        if handoff is not None:
            handoff.on_accepted(user_id)

    async def all_declined(self, handoff_id: str) -> None:
        """Everyone offered the handoff declined it."""
        handoff = self._by_id.get(handoff_id)
        if handoff is not None:
            handoff.on_all_declined()

    async def join(self, handoff_id: str, user_id: str, sdp: str) -> str:
        """Bridge a person's browser into the call of the handoff."""
        handoff = self._by_id.get(handoff_id)
        if handoff is None:
            raise LookupError(handoff_id)
        return await handoff.join(user_id, sdp)

    async def completed(self, handoff_id: str) -> None:
        """The person wrapped up the handoff."""
        handoff = self._by_id.get(handoff_id)
        if handoff is not None:
            await handoff.on_completed()
