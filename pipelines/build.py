"""The voice pipeline of one call, and the process-wide stages it is built from.

``build_stages`` loads everything heavy once per process (Silero, the recogniser and its domain model, the
synthesiser check, the brain's resources); ``build_pipeline`` is cheap, runs once per call, and is the only
place where the order of the stages is decided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipecat.audio.vad.silero import SileroOnnxModel
from pipecat.frames.frames import Frame, InputAudioRawFrame, TTSSpeakFrame
from pipecat.observers.base_observer import BaseObserver
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext, LLMContextMessage
from pipecat.processors.aggregators.llm_response_universal import (
    LLMAssistantAggregatorParams,
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.transports.base_transport import BaseTransport
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy, TurnAnalyzerUserTurnStopStrategy
from pipecat.turns.user_stop.base_user_turn_stop_strategy import BaseUserTurnStopStrategy
from pipecat.turns.user_turn_strategies import UserTurnStrategies

from pipelines.asr.base import ASRBackend, Evidence, EvidenceProbe, EvidenceProbing
from pipelines.asr.whisper_pool import WhisperOptions, start_second_opinion
from pipelines.brain.base import ActionSensing, BrainBackend, Prefetching, system_prompt
from pipelines.brain.extractive import weak_evidence
from pipelines.compat import LeanWorkerObserver as LeanWorkerObserver  # where tests/pipelines/test_units.py looks
from pipelines.compat import apply_all as apply_library_patches
from pipelines.compat import lean_observer, push_audio_directly
from pipelines.contracts import (
    CallSink,
    DigitCollector,
    HandoffHandler,
    PersonaSpec,
    Retrieval,
    Retriever,
    SpokenTextListener,
    TextEmbedder,
    TicketHandler,
)
from pipelines.options import ASROptions, BrainOptions, TTSOptions, VADOptions
from pipelines.processors.audio_gate import AgentAudioGate
from pipelines.processors.bargein import BargeInPolicy
from pipelines.processors.handoff_gate import HandoffGate
from pipelines.processors.latency import LatencyMeter
from pipelines.processors.rag import RAGContext
from pipelines.processors.transcript import CallRecorder
from pipelines.registry import backend_class
from pipelines.tools import CallTools, CustomToolHandler, ToolSpec, tools_schema
from pipelines.tts.base import TTSBackend
from pipelines.vad import EchoReference, SharedSileroVADAnalyzer, load_silero, vad_params

__all__ = ["CallPipeline", "Stages", "build_pipeline", "build_stages"]


@dataclass
class Stages:
    """Process-wide, prewarmed stage resources (build once with :func:`build_stages`, share across calls).

    Attributes:
        asr: The speech recognition engine.
        brain: The answering engine.
        tts: The speech synthesis engine.
        vad: VAD and turn-taking options.
        silero: The shared Silero ONNX model.
    """

    asr: ASRBackend | None
    brain: BrainBackend
    tts: TTSBackend | None
    vad: VADOptions
    silero: SileroOnnxModel
    sample_rate: int = 16000
    extra: dict[str, Any] = field(default_factory=dict)

    async def warm(self) -> None:
        """Finish the asynchronous part of the warm-up (the extractive brain embeds its tool examples).

        Call once per process after :func:`build_stages`, before the first call (calls work without it,
        but the first turn then pays for it).
        """
        await self.brain.warm()


def build_stages(
    *,
    asr: ASROptions | None = None,
    brain: BrainOptions | None = None,
    tts: TTSOptions | None = None,
    vad: VADOptions | None = None,
    embedder: TextEmbedder | None = None,
    whisper: WhisperOptions | None = None,
) -> Stages:
    """Load every stage's process-wide resources once (call at start-up, off the event loop).

    Args:
        asr: Recogniser options (``backend`` names one in ``pipelines.registry``; pocketsphinx by default). For the
            knowledge-base adaptation pass ``lm_path``/``dict_path`` from ``pipelines.asr.domain_lm``.
        brain: Brain options (``backend`` names one in ``pipelines.registry``; extractive by default).
        tts: Synthesiser options (``backend`` names one in ``pipelines.registry``; flite by default).
        vad: VAD and turn-taking options.
        embedder: Embeds short texts (the extractive brain matches tools with it); usually the knowledge
            base's embedder.
        whisper: Whisper's second opinion on the recogniser's finals (``pipelines.asr.whisper_pool``; None or
            ``mode=off``: none). Its prompt is ``asr.prompt`` (``pipelines.asr.kb_hints.kb_prompt``).

    Returns:
        The stages, to pass to every :func:`build_pipeline` call.
    """
    # Process-wide, like the stages: the library patches the installed versions allow (pipelines/compat).
    apply_library_patches()
    asr = asr or ASROptions()
    brain = brain or BrainOptions()
    tts = tts or TTSOptions()
    vad = vad or VADOptions()
    brain_backend = backend_class("brain", brain.backend).prewarm(brain, embedder=embedder)
    asr_backend: ASRBackend | None = None
    tts_backend: TTSBackend | None = None
    if not brain_backend.capabilities.speech_to_speech:
        asr_cls = backend_class("asr", asr.backend)
        tts_cls = backend_class("tts", tts.backend)
        asr_backend = asr_cls.prewarm(asr)
        if whisper is not None:
            start_second_opinion(asr_backend, whisper, prompt=asr.prompt)
        tts_backend = tts_cls.prewarm(tts)
    silero = load_silero()
    return Stages(
        asr=asr_backend, brain=brain_backend, tts=tts_backend, vad=vad, silero=silero, sample_rate=asr.sample_rate
    )


@dataclass
class CallPipeline:
    """One call's pipeline, ready to run: ``await WorkerRunner(handle_sigint=False).run(call.worker)``.

    Attributes:
        worker: The pipecat worker to run.
        pipeline: The processors, in order.
        context: The conversation context (only what was actually spoken is kept for the agent).
        tools: The call's tools.
        recorder: The transcript and recording of the call.
        latency: The latency meter (its ``records`` and ``barge_ins_ms`` hold this call's figures).
        barge_in: The barge-in policy.
        gate: The agent audio gate (transports with their own play-out buffer listen to it).
        processors: The processors by role (``input``, ``asr``, ``user_aggregator``, ``brain``, ``tts``, ...).
    """

    worker: PipelineWorker
    pipeline: Pipeline
    context: LLMContext
    tools: CallTools
    recorder: CallRecorder
    latency: LatencyMeter
    barge_in: BargeInPolicy
    gate: AgentAudioGate
    processors: dict[str, FrameProcessor] = field(default_factory=dict)
    handoff: HandoffGate | None = None


class CallerAudioEnd(FrameProcessor):
    """Drops the caller's audio frames once nothing further down needs them (place it after the user aggregator).

    The user aggregator passes every 20 ms ``InputAudioRawFrame`` on; without this stop each one crossed every
    later processor (RAG, brain, TTS, output, taps, assistant aggregator) and every observer, silence included.
    """

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        """Pass everything but the caller's audio."""
        await super().process_frame(frame, direction)
        if not isinstance(frame, InputAudioRawFrame):
            await self.push_frame(frame, direction)


def _turn_strategies(stages: Stages, policy: BargeInPolicy) -> UserTurnStrategies:
    stop: list[BaseUserTurnStopStrategy]
    if stages.vad.smart_turn:
        from pipecat.audio.turn.smart_turn.local_smart_turn_v3 import LocalSmartTurnAnalyzerV3

        stop = [TurnAnalyzerUserTurnStopStrategy(turn_analyzer=LocalSmartTurnAnalyzerV3())]
    else:
        stop = [SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=stages.vad.user_speech_timeout)]
    return UserTurnStrategies(start=[policy], stop=stop)


def speculative_search(retriever: Retriever, call_id: str) -> Callable[[str], Awaitable[Retrieval]]:
    """A search of the base that is not logged (the turn's own retrieval is): a probe's outside a call."""

    def search(text: str) -> Awaitable[Retrieval]:
        return retriever.retrieve(text, call_id=call_id, log=False)

    return search


def evidence_probe(
    search: Callable[[str], Awaitable[Retrieval]], acts_on: Callable[[str], Awaitable[bool]] | None = None
) -> EvidenceProbe:
    """What a final transcript finds, by the brain's rules, for the recogniser's second opinion.

    ``search``: the call's retrieval of a transcript (in a call, :meth:`RAGContext.lookup`, which the turn then
    reuses: the text weighed is searched once). ``acts_on``: the call's brain's own test of a request it acts on
    (``ActionSensing``), asked beside the search when two transcripts are ranked.
    """

    async def probe(text: str, confidence: float | None, *, ranking: bool = False) -> Evidence:
        if acts_on is None or not ranking:
            retrieval, acts = await search(text), False
        else:
            retrieval, acts = await asyncio.gather(search(text), acts_on(text))
        score = retrieval.passages[0].score if retrieval.passages else 0.0
        return Evidence(
            found=retrieval.found,
            score=score,
            weak=weak_evidence(found=retrieval.found, confidence=confidence, narrow=retrieval.narrow),
            acts=acts,
        )

    return probe


def build_pipeline(
    *,
    transport: BaseTransport,
    stages: Stages,
    retriever: Retriever,
    sink: CallSink,
    persona: PersonaSpec,
    call_id: str,
    create_ticket: TicketHandler | None = None,
    transfer_to_human: HandoffHandler | None = None,
    recording_dir: Path | None = None,
    greet: bool = True,
    observers: Sequence[BaseObserver] = (),
    on_agent_text: SpokenTextListener | None = None,
    hold_pcm: bytes = b"",
    custom_tools: Sequence[ToolSpec] = (),
    call_custom: CustomToolHandler | None = None,
    collect_digits: DigitCollector | None = None,
) -> CallPipeline:
    """Build one call's voice pipeline. The stage order is decided here and only here.

    ``transport.input() → handoff caller tap → ASR → caller tap (transcript, recording) → RAG listener → user
    aggregator (Silero VAD, barge-in policy, VAD-silence turn end or Smart Turn v3) → handoff brain tap → RAG
    context → brain (tools) → agent text tap → TTS → handoff mixer → transport.output() (its writes held by the
    agent audio gate) → gate tap → agent tap (transcript, live captions, recording) → assistant aggregator``,
    with the latency meter as an observer.

    Args:
        transport: The call's transport (its input and output are used once each). Audio is 16 kHz mono.
        stages: Process-wide stages from :func:`build_stages` (never built per call).
        retriever: Knowledge-base search for this tenant.
        sink: Where the transcript, latency, events and recording go.
        persona: Name, greeting, consent notice, voice, language, instructions.
        call_id: The call's id (log context and events).
        create_ticket: Records a ticket request (``create_ticket`` tool); ``None`` disables the tool.
        transfer_to_human: Opens a handoff (``transfer_to_human`` tool); ``None`` disables the tool.
        recording_dir: Directory for the call's dual-channel WAV; ``None``: no recording.
        greet: Speak the persona's greeting and consent notice when the call starts.
        observers: Extra pipecat observers for the worker.
        on_agent_text: Told each piece of the agent's text as the output transport passes it on, i.e. once its
            audio has been played (the caller's live captions); ``None``: nobody.
        hold_pcm: The hold audio a warm handoff loops (16-bit mono PCM at the stages' rate; see
            ``pipelines.processors.handoff_gate``).
        custom_tools: The operator's custom API tools (Integration Studio), offered to LLM brains by function
            calling (the extractive brain matches only the built-in tools).
        call_custom: Runs a custom API tool; ``None`` offers none.
        collect_digits: The caller's keypad (phone lines only): LLM brains get the ``collect_digits`` tool and the
            extractive brain lets the caller key a digit-like argument in; ``None`` (browsers, WebSocket): neither.

    Returns:
        The call's pipeline; run it with ``WorkerRunner(handle_sigint=False).run(call.worker)``.
    """
    brain_backend = stages.brain
    tools = CallTools(
        call_id=call_id,
        retriever=retriever,
        sink=sink,
        create_ticket=create_ticket,
        transfer_to_human=transfer_to_human,
        turn_seq=lambda: recorder.last_caller_seq,
        custom_tools=custom_tools,
        call_custom=call_custom,
        collect_digits=collect_digits,
    )
    messages: list[LLMContextMessage] = [{"role": "system", "content": system_prompt(persona)}]
    context = (
        LLMContext(messages=messages, tools=tools_schema(tools.llm_extra))
        if brain_backend.capabilities.passages_in_context
        else LLMContext(messages=messages)
    )
    recorder = CallRecorder(
        sink=sink,
        call_id=call_id,
        recording_path=recording_dir / f"{call_id}.wav" if recording_dir is not None else None,
        sample_rate=stages.sample_rate,
        context=context,
        on_agent_text=on_agent_text,
    )
    output = transport.output()
    # The agent's audio as it goes to the line: the VAD tells the caller's voice from its echo against it.
    reference = EchoReference() if stages.vad.echo_margin_db is not None else None
    gate = AgentAudioGate(output, call_id=call_id, reference=reference)
    policy = BargeInPolicy(call_id=call_id, gate=gate)
    meter = LatencyMeter(
        sink=sink,
        call_id=call_id,
        turn_seq=lambda: recorder.last_caller_seq,
        vad_start_secs=stages.vad.start_secs,
        gate=gate,
    )
    vad = SharedSileroVADAnalyzer(
        model=stages.silero,
        sample_rate=stages.sample_rate,
        params=vad_params(stages.vad),
        reference=reference,
        echo_margin_db=stages.vad.echo_margin_db or 0.0,
        stop_below_peak=stages.vad.stop_below_peak,
    )
    aggregators = LLMContextAggregatorPair(
        context,
        user_params=LLMUserAggregatorParams(
            vad_analyzer=vad, user_turn_strategies=_turn_strategies(stages, policy), user_turn_stop_timeout=3.0
        ),
        assistant_params=LLMAssistantAggregatorParams(),
    )
    brain = brain_backend.create_processor(call_id=call_id, persona=persona, tools=tools)
    rag = RAGContext(
        tools=tools,
        call_id=call_id,
        inject_passages=brain_backend.capabilities.passages_in_context,
        text_hooks=[brain.prefetch] if isinstance(brain, Prefetching) else [],
    )

    handoff = HandoffGate(
        call_id=call_id, sample_rate=stages.sample_rate, hold_pcm=hold_pcm, audio_gate=gate, next_seq=recorder.next_seq
    )
    processors: dict[str, FrameProcessor] = {"input": transport.input()}
    push_audio_directly(processors["input"])
    processors["handoff_caller_tap"] = handoff.caller_tap
    if stages.asr is not None:
        processors["asr"] = stages.asr.create_service(call_id=call_id)
        if isinstance(processors["asr"], EvidenceProbing):
            acts_on = brain.acts_on if isinstance(brain, ActionSensing) else None
            processors["asr"].use_evidence_probe(evidence_probe(rag.lookup, acts_on))
    processors["caller_tap"] = recorder.caller_tap
    processors["rag_listener"] = rag.listener
    processors["user_aggregator"] = aggregators.user()
    if stages.asr is not None:
        # A speech-to-speech brain (no ASR stage) listens to the caller's audio itself: keep it flowing there.
        processors["caller_audio_end"] = CallerAudioEnd(name=f"CallerAudioEnd#{call_id}", enable_direct_mode=True)
    processors["handoff_brain_tap"] = handoff.brain_tap
    processors["rag"] = rag.processor
    processors["brain"] = brain
    processors["agent_text_tap"] = policy.text_tap
    if stages.tts is not None:
        processors["tts"] = stages.tts.create_service(
            call_id=call_id, voice=persona.voice, speaking_rate=persona.speaking_rate
        )
    processors["handoff_mixer"] = handoff.mixer
    processors["output"] = output
    processors["audio_gate"] = gate.tap
    processors["agent_tap"] = recorder.agent_tap
    processors["assistant_aggregator"] = aggregators.assistant()

    pipeline = Pipeline(list(processors.values()))
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(
            audio_in_sample_rate=stages.sample_rate,
            audio_out_sample_rate=stages.sample_rate,
            # Nothing reads pipecat's MetricsFrames (the meter above times every turn): none are made.
            enable_metrics=False,
        ),
        observers=[meter, *observers],
        conversation_id=call_id,
        idle_timeout_secs=None,
        enable_rtvi=False,
        # Nothing reads pipecat's turn tracking (the meter above keeps our turns); its observer saw every frame.
        enable_turn_tracking=False,
    )

    lean_observer(worker)

    if greet:
        greeting = " ".join(s for s in (persona.greeting, persona.consent_notice) if s)

        async def _greet(_worker: PipelineWorker, _frame: object) -> None:
            await worker.queue_frame(TTSSpeakFrame(greeting))

        worker.add_event_handler("on_pipeline_started", _greet)

    return CallPipeline(
        worker=worker,
        pipeline=pipeline,
        context=context,
        tools=tools,
        recorder=recorder,
        latency=meter,
        barge_in=policy,
        gate=gate,
        processors=processors,
        handoff=handoff,
    )
