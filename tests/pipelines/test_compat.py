"""The registry of library patches (``pipelines.compat``): each still matches the installed library, and one that
does not steps aside with one log line while the library's own behaviour carries the call."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import queue
import shutil
import subprocess
import sys
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiortc import RTCPeerConnection
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineWorker
from pipecat.pipeline.worker_observer import WorkerObserver
from pipecat.processors.frame_processor import FrameProcessor
from pipecat.transports.smallwebrtc.transport import RawAudioTrack, SmallWebRTCTransport
from structlog.testing import capture_logs

import pipelines.compat.output_reader as output_reader
from agent.transports import webrtc_media
from pipelines.compat import (
    PATCHES,
    LibraryPatch,
    Original,
    apply_all,
    check,
    lean_observer,
    source_sha256,
    substitute,
    usable,
)
from pipelines.vad import (
    ECHO_AWARE_GATE,
    QUIET_WINDOWS_INLINE,
    SHARED_SESSION,
    STOP_BELOW_PEAK,
    EchoReference,
    SharedSileroVADAnalyzer,
    load_silero,
)
from tests.pipelines.test_input_audio import _run as run_input_transport

pytestmark = pytest.mark.unit

UPSTREAM = Path(__file__).resolve().parents[2] / "pipelines" / "compat" / "upstream"
SITE_PACKAGES = Path(next(p for p in sys.path if p.endswith("site-packages")))


# A record is checked (and logged) once per process: each altered record below is one not seen before.
_fakes = itertools.count(1)


def _old_version(name: str) -> LibraryPatch:
    """The record of ``name`` as if it had been written for other releases of its libraries."""
    patch, n = PATCHES[name], next(_fakes)
    return dataclasses.replace(patch, versions=tuple((dist, f"0.0.{n}") for dist, _ in patch.versions))


def _changed_source(name: str) -> LibraryPatch:
    """The record of ``name`` as if its first original's source had been different when it was written."""
    patch, n = PATCHES[name], next(_fakes)
    first, *rest = patch.originals
    return dataclasses.replace(patch, originals=(Original(first.path, f"{n:064x}"), *rest))


def _skipped(logs: list[MutableMapping[str, Any]]) -> list[tuple[str, str]]:
    return [(e["patch"], e["reason"]) for e in logs if e["event"] == "library_patch_skipped"]


@pytest.fixture
def stepping_aside() -> Iterator[list[MutableMapping[str, Any]]]:
    """The log events written meanwhile."""
    with capture_logs() as logs:
        yield logs


# --- every patch still matches the library it claims to patch ------------------------------------------------


@pytest.mark.parametrize("name", sorted(PATCHES))
def test_each_patch_matches_the_installed_library(name: str) -> None:
    patch = PATCHES[name]
    assert patch.name == name
    assert patch.versions and patch.originals, "a patch names the releases and the code it was written against"
    assert check(patch) is None, f"{name}: {check(patch)}; re-read the library's change, then update the record"


def test_an_original_shared_by_patches_is_recorded_with_one_hash() -> None:
    seen: dict[str, str] = {}
    for patch in PATCHES.values():
        for original in patch.originals:
            assert seen.setdefault(original.path, original.sha256) == original.sha256, original.path


def test_the_check_reads_the_original_through_an_applied_process_wide_patch() -> None:
    apply_all()
    replaced = output_reader._MediaSender._next_frame
    assert replaced.__wrapped__ is not replaced
    assert source_sha256(replaced) == PATCHES[output_reader.PATCH].originals[0].sha256


@pytest.mark.parametrize("name", sorted(n for n, p in PATCHES.items() if p.upstream))
def test_each_upstream_patch_applies_to_the_installed_source(name: str, tmp_path: Path) -> None:
    # GNU patch is a Debian package ./scripts/bootstrap installs: without it this test fails, it does not skip.
    assert shutil.which("patch"), "GNU patch is missing: run ./scripts/bootstrap"
    diff = UPSTREAM / cast(str, PATCHES[name].upstream)
    text = diff.read_text()
    targets = [line.split()[1].split("/", 1)[1] for line in text.splitlines() if line.startswith("+++ ")]
    assert targets, f"{diff.name} is a unified diff"
    for target in targets:
        copy = tmp_path / target
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SITE_PACKAGES / target.removeprefix("src/"), copy)
    result = subprocess.run(
        ["patch", "-p1", "--dry-run", "-d", str(tmp_path), "-i", str(diff)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- a patch whose library differs steps aside ---------------------------------------------------------------


def test_another_release_is_refused_with_one_log_line(stepping_aside: list[MutableMapping[str, Any]]) -> None:
    fake = _old_version(output_reader.PATCH)
    reason = check(fake)
    assert reason is not None
    assert reason == f"pipecat-ai 1.14.0 is installed; the patch was written for {fake.versions[0][1]}"
    assert not usable(fake)
    assert not usable(fake)  # checked once: no second line
    assert _skipped(stepping_aside) == [(output_reader.PATCH, reason)]


def test_changed_or_missing_library_code_is_refused() -> None:
    name = "pipecat.worker_observer_lean"
    assert check(_changed_source(name)) == (
        "pipecat.pipeline.worker_observer:WorkerObserver.__init__ differs from the source the patch was written against"
    )
    gone = dataclasses.replace(
        PATCHES[name], originals=(Original("pipecat.pipeline.worker_observer:WorkerObserver.gone", ""),)
    )
    assert check(gone) == "pipecat.pipeline.worker_observer:WorkerObserver.gone cannot be read (AttributeError)"
    absent = dataclasses.replace(PATCHES[name], versions=(("no-such-distribution", "1.0"),))
    assert check(absent) == "no-such-distribution is not installed"


def test_output_reader_steps_aside_and_pipecats_reader_stays(
    monkeypatch: pytest.MonkeyPatch, stepping_aside: list[MutableMapping[str, Any]]
) -> None:
    sender = output_reader._MediaSender
    pipecats = getattr(sender._next_frame, "__wrapped__", sender._next_frame)
    # This process may have the patch applied already: start from pipecat's reader (restored after the test).
    monkeypatch.setattr(sender, "_next_frame", pipecats)
    monkeypatch.delattr(sender, "_voxdesk_queued_at_once", raising=False)
    with substitute(_old_version(output_reader.PATCH)):
        assert apply_all() == {output_reader.PATCH: False}
    assert sender._next_frame is pipecats
    assert [p for p, _ in _skipped(stepping_aside)] == [output_reader.PATCH]
    assert apply_all() == {output_reader.PATCH: True}  # the registered record: applied
    assert sender._next_frame.__wrapped__ is pipecats


def test_input_transport_keeps_pipecats_queue_when_the_patch_steps_aside(
    stepping_aside: list[MutableMapping[str, Any]],
) -> None:
    with substitute(_changed_source("pipecat.input_pushes_from_reader")):
        seen, after_end, installed = asyncio.run(run_input_transport(direct=True))
    assert not installed
    assert seen == [0, 0, 0], "pipecat's queue: the push returns before the frame has moved on"
    assert after_end == 0
    assert [p for p, _ in _skipped(stepping_aside)] == ["pipecat.input_pushes_from_reader"]


def test_worker_keeps_pipecats_observer_when_the_patch_steps_aside(
    stepping_aside: list[MutableMapping[str, Any]],
) -> None:
    worker = PipelineWorker(Pipeline([FrameProcessor()]))
    with substitute(_old_version("pipecat.worker_observer_lean")):
        assert not lean_observer(worker)
    assert type(worker._observer) is WorkerObserver
    assert lean_observer(worker)
    assert type(worker._observer) is not WorkerObserver
    assert [p for p, _ in _skipped(stepping_aside)] == ["pipecat.worker_observer_lean"]


def test_vad_falls_back_to_pipecats_analyser_part_by_part(stepping_aside: list[MutableMapping[str, Any]]) -> None:
    model = load_silero()
    reference = EchoReference()
    patched = SharedSileroVADAnalyzer(model=model, sample_rate=16000, reference=reference, stop_below_peak=0.03)
    assert patched._inline and patched._double_talk is not None and patched._stop_below_peak == 0.03
    assert patched._model.session is model.session
    with (
        substitute(_old_version(SHARED_SESSION)),
        substitute(_changed_source(QUIET_WINDOWS_INLINE)),
        substitute(_changed_source(ECHO_AWARE_GATE)),
        substitute(_changed_source(STOP_BELOW_PEAK)),
    ):
        plain = SharedSileroVADAnalyzer(model=model, sample_rate=16000, reference=reference, stop_below_peak=0.03)
    assert plain._model.session is not model.session, "pipecat's own session"
    assert not plain._inline and plain._double_talk is None and plain._stop_below_peak == 0.0
    assert sorted(p for p, _ in _skipped(stepping_aside)) == sorted(
        [SHARED_SESSION, QUIET_WINDOWS_INLINE, ECHO_AWARE_GATE, STOP_BELOW_PEAK]
    )

    async def analyse() -> list[str]:
        plain.set_sample_rate(16000)  # as pipecat does when the pipeline starts
        states = [await plain.analyze_audio(bytes(640)) for _ in range(10)]  # on pipecat's thread
        await plain.cleanup()  # type: ignore[no-untyped-call]  # untyped in pipecat
        await patched.cleanup()  # type: ignore[no-untyped-call]  # untyped in pipecat
        return [s.name for s in states]

    assert set(asyncio.run(analyse())) == {"QUIET"}


def test_webrtc_media_keeps_pipecat_and_aiortc_behaviour_when_its_patches_step_aside(
    stepping_aside: list[MutableMapping[str, Any]],
) -> None:
    client = SimpleNamespace(read_audio_frame="pipecat's reader")
    transport = cast(SmallWebRTCTransport, SimpleNamespace(_client=client))
    with substitute(_old_version(webrtc_media.BATCHED_READER)):
        assert not webrtc_media.batch_audio_input(transport)
    assert client.read_audio_frame == "pipecat's reader"

    async def receivers() -> tuple[int, Any, Any, bool]:
        pc = RTCPeerConnection()
        pc.addTransceiver("audio")
        receiver: Any = pc.getReceivers()[0]
        buffer = receiver._RTCRtpReceiver__jitter_buffer
        with (
            substitute(_old_version(webrtc_media.JITTER_PREFETCH)),
            substitute(_changed_source(webrtc_media.INLINE_DECODING)),
            substitute(_changed_source(webrtc_media.SHARED_CLOCK_ENCODER)),
        ):
            inline = webrtc_media.tune_audio_receivers(pc, sample_rate=16000)
            encoder = webrtc_media.install_quiet_encoder(pc)
        kept = receiver._RTCRtpReceiver__jitter_buffer is buffer
        decoder_queue = receiver._RTCRtpReceiver__decoder_queue
        await pc.close()
        return inline, kept, decoder_queue, encoder

    inline, kept, decoder_queue, encoder = asyncio.run(receivers())
    assert inline == 0 and kept and isinstance(decoder_queue, queue.Queue) and not encoder

    async def track() -> Any:
        connection = webrtc_media.VoxdeskWebRTCConnection(ice_servers=None)
        with substitute(_changed_source(webrtc_media.QUIET_TRACK)):
            connection.replace_audio_track(RawAudioTrack(sample_rate=16000))
        return connection.audio_track

    assert asyncio.run(track()) is None, "pipecat's own track goes out"
    assert sorted(p for p, _ in _skipped(stepping_aside)) == sorted(
        [
            webrtc_media.BATCHED_READER,
            webrtc_media.JITTER_PREFETCH,
            webrtc_media.INLINE_DECODING,
            webrtc_media.SHARED_CLOCK_ENCODER,
            webrtc_media.QUIET_TRACK,
        ]
    )
