"""The registry of library patches, and the check that lets a patch step aside when its library has moved.

Each :class:`LibraryPatch` names the library objects it reaches into and, for those it replaces or depends on
line by line, the sha256 of their source as written for (:class:`Original`). :func:`check` compares the installed
distributions' versions (``importlib.metadata``) and those sources with the record; :func:`usable` does it once per
process per record, and when anything differs logs one ``library_patch_skipped`` line and answers ``False``, so the
caller keeps the library's own behaviour.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import inspect
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

import structlog

__all__ = ["PATCHES", "LibraryPatch", "Original", "check", "resolve", "source_sha256", "substitute", "usable"]

PIPECAT = ("pipecat-ai", "1.14.0")
AIORTC = ("aiortc", "1.16.0")


@dataclass(frozen=True)
class Original:
    """A library function, method or class a patch replaces or mirrors, as it was when the patch was written.

    Attributes:
        path: ``"module:qualified.name"`` (``"pipecat.transports.base_input:BaseInputTransport.push_audio_frame"``).
        sha256: The sha256 of ``inspect.getsource`` of that object (:func:`source_sha256`).
    """

    path: str
    sha256: str


@dataclass(frozen=True)
class LibraryPatch:
    """One reach into a library's private parts, with why it pays and what it was written against.

    Attributes:
        name: Registry key (``"<library>.<what>"``).
        target: The library objects replaced, written or read (for people; :attr:`originals` is checked).
        where: Our module that applies it.
        why: What the library does that costs, and what the patch does instead.
        gain: The measured gain, as recorded when the patch went in.
        versions: Distribution name and version the patch was written for (all must match exactly).
        originals: Library code the patch replaces or reproduces; a changed source makes the patch step aside.
        scope: ``"process"`` (a class attribute, applied once by :func:`pipelines.compat.apply_all`) or
            ``"instance"`` (one object at a time, where it is built).
        upstream: The patch file under ``pipelines/compat/upstream/`` offering the change upstream, if any.
    """

    name: str
    target: str
    where: str
    why: str
    gain: str
    versions: tuple[tuple[str, str], ...]
    originals: tuple[Original, ...]
    scope: Literal["process", "instance"] = "instance"
    upstream: str | None = None


def resolve(path: str) -> Any:
    """The object at ``"module:qualified.name"`` (``AttributeError``/``ImportError`` when it is gone)."""
    module_name, _, qualname = path.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def source_sha256(obj: Any) -> str:
    """The sha256 (hex) of ``obj``'s source code, as :class:`Original` records it."""
    target = inspect.unwrap(obj)
    return hashlib.sha256(inspect.getsource(target).encode()).hexdigest()


def check(patch: LibraryPatch) -> str | None:
    """Why ``patch`` must not be applied to the installed libraries, or ``None`` when it may.

    Compares each distribution's installed version with :attr:`LibraryPatch.versions`, then each original's source
    with its recorded sha256.
    """
    for distribution, expected in patch.versions:
        try:
            installed = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            return f"{distribution} is not installed"
        if installed != expected:
            return f"{distribution} {installed} is installed; the patch was written for {expected}"
    for original in patch.originals:
        try:
            digest = source_sha256(resolve(original.path))
        except (ImportError, AttributeError, TypeError, OSError) as exc:
            return f"{original.path} cannot be read ({type(exc).__name__})"
        if digest != original.sha256:
            return f"{original.path} differs from the source the patch was written against"
    return None


_checked: dict[LibraryPatch, bool] = {}
_substitutes: dict[str, LibraryPatch] = {}


def usable(name_or_patch: str | LibraryPatch) -> bool:
    """Whether a registered patch may be applied here (checked once per process per record).

    A patch that may not is logged once (``library_patch_skipped``, with the patch's name and the reason); its
    caller then keeps the library's own behaviour.

    Args:
        name_or_patch: A key of :data:`PATCHES`, or a record (a test's altered copy of one).
    """
    if isinstance(name_or_patch, str):
        patch = _substitutes.get(name_or_patch) or PATCHES[name_or_patch]
    else:
        patch = name_or_patch
    known = _checked.get(patch)
    if known is not None:
        return known
    reason = check(patch)
    if reason is not None:
        # Bound here, not at import: the line goes through the logging configured when it is written (once).
        structlog.get_logger(__name__).warning("library_patch_skipped", patch=patch.name, reason=reason)
    _checked[patch] = reason is None
    return reason is None


@contextmanager
def substitute(patch: LibraryPatch) -> Iterator[None]:
    """Check ``patch`` in place of the registered record of the same name while the context lasts.

    For trying a record against another library release (an altered version or source hash) without editing
    :data:`PATCHES`; what is applied meanwhile is decided by ``patch``'s check.
    """
    if patch.name not in PATCHES:
        raise KeyError(f"no registered patch named {patch.name!r}")
    previous = _substitutes.get(patch.name)
    _substitutes[patch.name] = patch
    try:
        yield
    finally:
        if previous is None:
            del _substitutes[patch.name]
        else:
            _substitutes[patch.name] = previous


def _patches(*patches: LibraryPatch) -> Mapping[str, LibraryPatch]:
    return MappingProxyType({p.name: p for p in patches})


def _pipecat(path: str, sha256: str) -> Original:
    return Original(f"pipecat.{path}", sha256)


def _aiortc(path: str, sha256: str) -> Original:
    return Original(f"aiortc.{path}", sha256)


_GAIN_OPUS = (
    "8-call p95 1.7-1.8 s -> 1.05-1.13 s (A/B on fresh servers, 40 turns each), with the agent's voice "
    "encoded through libopus (37a555a)"
)


_RECEIVER = "rtcrtpreceiver:RTCRtpReceiver"

#: Every patch of a library's private parts in this code base, by name.
PATCHES: Mapping[str, LibraryPatch] = _patches(
    LibraryPatch(
        name="pipecat.output_reader_takes_queued_frames",
        target="BaseOutputTransport.MediaSender._next_frame (class attribute, replaced); reads _audio_queue, "
        "_mixer, _filter_audio, _apply_volume, _bot_stopped_speaking",
        where="pipelines.compat.output_reader",
        why="pipecat's output reader takes every frame, queued or not, with asyncio.wait_for(queue.get(), timeout); "
        "on Python 3.11 that is pipecat's wait_for2, a new task and a waiter per frame: several loop turns even "
        "for a frame already queued. Without a mixer, a queued frame is taken at once; an empty queue is waited "
        "on as pipecat does.",
        gain="at 8 calls an answer's first audio left the queue 150 ms (p50) after it went in; 13 ms with the "
        "patch (4f6b29d)",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "transports.base_output:BaseOutputTransport.MediaSender._next_frame",
                "ff6840b782e9f2b653db556e5e2c948b46643311a619ed64a0eeb48ed65c36d2",
            ),
        ),
        scope="process",
        upstream="0001-pipecat-output-reader-takes-queued-frames.patch",
    ),
    LibraryPatch(
        name="pipecat.input_pushes_from_reader",
        target="BaseInputTransport.push_audio_frame (per instance, replaced); reads _params, _audio_task, _paused, "
        "_audio_in_queue",
        where="pipelines.compat.input_push",
        why="pipecat's input transport queues every audio frame for a second task that takes it with a per-frame "
        "wait_for (a new task and a waiter on Python 3.11) only to push it on when there is no audio filter. "
        "The frame is pushed from the reader's own task instead, under the conditions that task runs under.",
        gain="a caller frame reaches the VAD after one queue hop instead of six, with the recogniser in direct "
        "mode (a3f22b0); not timed on its own",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "transports.base_input:BaseInputTransport.push_audio_frame",
                "3306f2143f4a2855f8a3304b50afec9c810751fa6b9524461c2cd9cdda407757",
            ),
            _pipecat(
                "transports.base_input:BaseInputTransport._audio_task_handler",
                "79e927e3d6d9d3ba54a1e4163e4f9ce265bd6537daff4ba0f89f97fab1512862",
            ),
            _pipecat(
                "transports.base_input:BaseInputTransport._create_audio_task",
                "bd8b6e4be386607c89b64c80618ebb74cb9320c3228511eb3fbfe3e8d28be879",
            ),
            _pipecat(
                "transports.base_input:BaseInputTransport._cancel_audio_task",
                "e5dd703a7912b4fab84dee00aba1748fccb02cd518d58c0bc8b917ad7d1c493a",
            ),
        ),
        upstream="0002-pipecat-input-pushes-audio-from-reader.patch",
    ),
    LibraryPatch(
        name="pipecat.worker_observer_lean",
        target="PipelineWorker._observer (per worker, replaced by a WorkerObserver subclass that reads _proxies, "
        "_frames_pushed)",
        where="pipelines.compat.worker_observer",
        why="pipecat's worker observer queues a 'frame processed' event per frame per processor, and every first "
        "push, to every observer, read or not: a hundred or more queue hops a second per observer per call, "
        "nearly all audio nobody reads. Processed events go only to observers that override on_process_frame, "
        "pushes only to observers whose observed_frames match.",
        gain="a dozen queue hops per audio frame saved (4fdab4e); no audio reaches the live-call observer and only "
        "the synthesiser's reaches the latency meter (853eabf); not timed on its own",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "pipeline.worker_observer:WorkerObserver.__init__",
                "01a83eb8292526ca0e5d05fee5926c29a1842d0c5931012ebe55c124303d6e65",
            ),
            _pipecat(
                "pipeline.worker_observer:WorkerObserver.on_process_frame",
                "199f3cb88fdcb2c576641ec52c28f2c7eab8405a271a2ff4bf3c585c487d71e2",
            ),
            _pipecat(
                "pipeline.worker_observer:WorkerObserver.on_push_frame",
                "469c3453cb1d2d8958795fcc3b4dc669965d6f7c8dbf7ed0a11c04bb3972abad",
            ),
        ),
        upstream="0003-pipecat-worker-observer-processed-events-to-readers.patch",
    ),
    LibraryPatch(
        name="pipecat.silero_shared_session",
        target="SileroVADAnalyzer.__init__ (skipped by a subclass, which sets _model, _windows_since_reset, "
        "_low_confidence_windows itself)",
        where="pipelines.vad.SharedSileroVADAnalyzer",
        why="pipecat's Silero analyser loads a new ONNX session for every instance, i.e. every call. The subclass "
        "copies the process-wide model (its session is stateless and thread-safe) and keeps the recurrent state "
        "per call.",
        gain="about 29 ms of CPU and one ONNX session's memory less per call start (SileroVADAnalyzer() timed "
        "here, median of 5, pipecat 1.14.0)",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "audio.vad.silero:SileroVADAnalyzer.__init__",
                "3e0c092bdd76b433b82e76520d731d33e4b4711c61005b3cf943be9d866c71d0",
            ),
        ),
        upstream="0004-pipecat-silero-analyzer-shared-model.patch",
    ),
    LibraryPatch(
        name="pipecat.vad_quiet_windows_inline",
        target="VADAnalyzer.analyze_audio (overridden to call _run_analyzer inline; reads _vad_buffer, "
        "_vad_frames_num_bytes)",
        where="pipelines.vad.SharedSileroVADAnalyzer",
        why="pipecat hands every 20 ms frame to the analyser's thread. A frame that does not complete a window, or "
        "completes a silent one (Silero is not run on it), is analysed inline: no thread hop.",
        gain="idle connected call 18 % -> 6-8 % of a core, together with 20 ms agent frames and pre-encoded Opus "
        "silence (e1f9321)",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "audio.vad.vad_analyzer:VADAnalyzer.analyze_audio",
                "e533bf2de9f17a7a60ed673631878ed553feb193a37c15fce7ad53b0bc2a6017",
            ),
            _pipecat(
                "audio.vad.vad_analyzer:VADAnalyzer._run_analyzer",
                "0a33840d096030fceaaec4d76df8c327b1dda1257784de5041c1017785a9dde0",
            ),
        ),
    ),
    LibraryPatch(
        name="pipecat.vad_echo_aware_gate",
        target="VADAnalyzer._get_smoothed_volume (overridden; reads _params, _vad_state, _volume_tracker)",
        where="pipelines.vad.SharedSileroVADAnalyzer",
        why="pipecat's loudness gate is a 400 ms measure smoothed 20 % per window: from silence even loud speech "
        "needs ~190 ms to pass it. While the agent speaks, a window that is plainly the caller (above the "
        "measured echo return loss) opens the gate at once.",
        gain="WebRTC barge-in p50 284 -> 211 ms, p95 321 -> 231 ms; echo at -10 dB behaves as before (aca4dd6)",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "audio.vad.vad_analyzer:VADAnalyzer._get_smoothed_volume",
                "2db0b1a237baabfc45b98a47fac9502fc80422929ac6d6249631dc0b00fe4201",
            ),
            _pipecat(
                "audio.vad.vad_analyzer:VADAnalyzer._run_analyzer",
                "0a33840d096030fceaaec4d76df8c327b1dda1257784de5041c1017785a9dde0",
            ),
        ),
    ),
    LibraryPatch(
        name="pipecat.vad_stop_below_peak",
        target="VADAnalyzer._run_analyzer (SileroVADAnalyzer.voice_confidence overridden; reads _vad_state, the "
        "state before the window it is asked about)",
        where="pipelines.vad.SharedSileroVADAnalyzer",
        why="pipecat ends a turn stop_secs after Silero's confidence falls under its threshold, and Silero keeps "
        "hearing voice in a fading word for one to four windows more. A window of a turn in progress that is "
        "under stop_below_peak of the turn's loudest counts as not speech, so the stop is counted from the fade.",
        gain="off by default (pipeline.vad.stop_below_peak). At 0.03: VAD stop after the last voiced frame, less "
        "stop_secs, p50 on 300 development questions in five voices 20-80 -> 0-20 ms, heard p50 -55 to -60 ms "
        "on flite voices; but held out it ends turns in the pause between two sentences (right answers down in "
        "every cell)",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "audio.vad.vad_analyzer:VADAnalyzer._run_analyzer",
                "0a33840d096030fceaaec4d76df8c327b1dda1257784de5041c1017785a9dde0",
            ),
        ),
    ),
    LibraryPatch(
        name="pipecat.smallwebrtc_batched_reader",
        target="SmallWebRTCClient.read_audio_frame (per client, replaced); reads SmallWebRTCTransport._client, "
        "the client's _audio_in_resampler, _in_sample_rate, _audio_in_layout, _audio_in_channels, "
        "_audio_input_track (written None when the track ends, as pipecat does) and aiortc's "
        "RemoteStreamTrack._queue",
        where="agent.transports.webrtc_media.batch_audio_input",
        why="pipecat reads aiortc's decoded frames one at a time and each travels the pipeline alone; when the "
        "loop falls behind, aiortc's queue grows and so does every later turn's latency. The frames already "
        "decoded are handed on as one frame (up to 100 ms).",
        gain="8 calls p50 ~1.6 s -> ~1.2-1.4 s, together with the agent's voice Opus-encoded in its track (f6fadd9)",
        versions=(PIPECAT, AIORTC),
        originals=(
            _pipecat(
                "transports.smallwebrtc.transport:SmallWebRTCClient.read_audio_frame",
                "6d1be5bc7947c4e5f93f089c0eb6fe07ad5ee4857588acf9f94090dfbdaff428",
            ),
            _aiortc(
                "rtcrtpreceiver:RemoteStreamTrack.recv",
                "e572e045f1d6f41da4c21e2513333a6353d5857797b8a66967955cf9bf1a3b3f",
            ),
        ),
    ),
    LibraryPatch(
        name="pipecat.smallwebrtc_quiet_track",
        target="RawAudioTrack (per connection, replaced by our track that drains its _chunk_queue of (chunk, "
        "future) and reads _sample_rate)",
        where="agent.transports.webrtc_media.VoxdeskWebRTCConnection.replace_audio_track",
        why="pipecat's track hands aiortc a 10 ms PCM frame 100 times a second, silence included, each resampled "
        "and Opus-encoded on a thread. Our track sends 20 ms frames, the agent's voice Opus-encoded mono in the "
        "track and one pre-encoded silence packet while quiet, and lets pipecat write 60 ms ahead.",
        gain="idle connected call 18 % -> 6-8 % of a core (e1f9321); " + _GAIN_OPUS,
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "transports.smallwebrtc.transport:RawAudioTrack.__init__",
                "119cd818c04f327b8f9f0b137ebc03d53f27b21625d33ae9eb1d9505a0b52b4e",
            ),
            _pipecat(
                "transports.smallwebrtc.transport:RawAudioTrack.add_audio_bytes",
                "2c9fa18bbeede670db90430b446bab68bcc5b9b5523d71cff6ed60d5b48e915a",
            ),
            _pipecat(
                "transports.smallwebrtc.transport:RawAudioTrack.recv",
                "f194d3e2aa07f798e754edf9d3efa553b603bce4ed80797db11054e2847d9a1b",
            ),
        ),
    ),
    LibraryPatch(
        name="aiortc.receiver_jitter_prefetch",
        target="RTCRtpReceiver.__jitter_buffer (per audio receiver, replaced; reads __kind)",
        where="agent.transports.webrtc_media.tune_audio_receivers",
        why="aiortc's audio jitter buffer holds 4 packets (80 ms) before it releases the first, and has no "
        "setting; a buffer with prefetch 1 releases each frame as soon as it is complete.",
        gain="every caller utterance and barge-in reaches the VAD 60 ms sooner (80 ms -> 20 ms held, 73fdf3b)",
        versions=(AIORTC,),
        originals=(
            _aiortc(f"{_RECEIVER}.__init__", "3e3b7b5cefbaac6f32d31c024a5ecf70093b55e60db6a3b4f4f900400688ccb9"),
            _aiortc(
                f"{_RECEIVER}._handle_rtp_packet", "4e54983d021a6336d80c29490f82f9a6dd531c0d3179b2daed818120c5ece238"
            ),
        ),
        upstream="0005-aiortc-receiver-audio-jitter-prefetch.patch",
    ),
    LibraryPatch(
        name="aiortc.receiver_inline_decoding",
        target="RTCRtpReceiver.__decoder_queue (per audio receiver, replaced before its decoder thread starts; "
        "reads __decoder_thread, _track._queue)",
        where="agent.transports.webrtc_media.InlineAudioDecoding",
        why="aiortc decodes each receiver's Opus at 48 kHz stereo on a thread of its own and hands every frame "
        "back to the loop as a new task; the reader then resampled it to 16 kHz mono. Frames are decoded where "
        "aiortc completes them, straight to the pipeline's rate (~30 us, GIL released).",
        gain=_GAIN_OPUS,
        versions=(AIORTC,),
        originals=(
            _aiortc(f"{_RECEIVER}.receive", "d6d8d8d7a0bf4e95f3fb7cb78cf275d0a5f50c4912e0cb8498272008779916ef"),
            _aiortc(
                f"{_RECEIVER}._handle_rtp_packet", "4e54983d021a6336d80c29490f82f9a6dd531c0d3179b2daed818120c5ece238"
            ),
            _aiortc(f"{_RECEIVER}.stop", "63734b6894ce67a52f4df1022d30b5f635966f56dca91b9a2e9b54e90e4153aa"),
            _aiortc(
                "rtcrtpreceiver:decoder_worker", "d500d4e567d6846c0bd1b501685ec5dd65202563280a01b25e2c014c2273c3eb"
            ),
            _aiortc(
                "rtcrtpreceiver:RemoteStreamTrack.recv",
                "e572e045f1d6f41da4c21e2513333a6353d5857797b8a66967955cf9bf1a3b3f",
            ),
        ),
    ),
    LibraryPatch(
        name="aiortc.sender_shared_clock_encoder",
        target="RTCRtpSender.__encoder (per audio sender, replaced before its first frame; reads "
        "RTCRtpTransceiver._codecs)",
        where="agent.transports.webrtc_media.install_quiet_encoder",
        why="aiortc stamps encoded frames with its encoder's sample count and pre-encoded packets with their pts; "
        "a track that sends both (the voice and pre-encoded silence) would make the RTP clock jump. The sender "
        "gets an OpusEncoder subclass that stamps both from one counter.",
        gain="what lets the quiet track send pre-encoded silence: idle connected call 18 % -> 6-8 % of a core "
        "(e1f9321)",
        versions=(AIORTC,),
        originals=(
            _aiortc(
                "rtcrtpsender:RTCRtpSender._next_encoded_frame",
                "89dd9fa4fb33741cc60857f1cebae31c9a88b72da9a42f91abc6090f40cb8253",
            ),
            _aiortc(
                "codecs.opus:OpusEncoder.encode", "b70acba9312696b8c3147c9236b9e70de5761e650c7f878d075096d6e560af58"
            ),
            _aiortc("codecs.opus:OpusEncoder.pack", "124c7eab72fc93cbfb9cbd92ceee0b5bd167c48183f4df28c979db1be2d78dda"),
        ),
    ),
    LibraryPatch(
        name="pipecat.whisper_shared_model",
        target="WhisperSTTService._load (overridden by a subclass); writes _model",
        where="pipelines.asr.faster_whisper",
        why="pipecat's Whisper service loads its model in _load, once per service, so once per call. The subclass "
        "hands every call the model the process loaded at start-up.",
        gain="a call starts without loading a model: no ~0.3 s load and no extra ~260 MB resident per call "
        "(tiny.en, measured in ENVIRONMENT.md)",
        versions=(PIPECAT,),
        originals=(
            _pipecat(
                "services.whisper.stt:WhisperSTTService._load",
                "0b8b1cf015dcb0faa2369ca70c05b2527607dd6e029c5953446f3b23cc5b78e5",
            ),
        ),
    ),
)
