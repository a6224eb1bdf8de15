"""G.722 (wideband, 16 kHz audio, RTP payload type 9 with its 8 kHz RTP clock) on the SIP endpoint.

The answer's codec choice on real SDP offers (aiosipua's parser and negotiation, the endpoint's preference);
the agent's side of a G.722 call on a real RTP session over loopback (packets, timestamps, a 5 kHz tone only
wideband carries); a G.729-only INVITE answered 488 by the running server; a G.722 call held and resumed with
re-INVITEs keeping payload 9 and the busy message reaching a G.722 caller (a bare UDP user agent); and a whole
call from Debian's baresip offering nothing but G.722: the spoken question reaches the agent, the answer comes
back as speech, the call's metadata says codec 9 and its recording is 16 kHz with both voices in it. Uses the
package's one server (``conftest.sip_server``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
import uuid
import wave
from pathlib import Path

import numpy as np
import pytest
from aiosipua.rtp_bridge import CallSession as RtpSession
from aiosipua.sdp import parse_sdp
from aiosipua.sdp_negotiate import SdpNegotiationError
from G722 import G722
from pipecat.frames.frames import OutputAudioRawFrame
from pipecat.transports.base_transport import TransportParams

from agent.transports.sip.endpoint import WIDEBAND, answer_codecs
from agent.transports.sip.media import AudioFormat, RtpOutput
from tests.sip.baresip import call_with_baresip, speech_frames
from tests.sip.conftest import BUSY_TRUNK_IP, SipServer, free_udp_port


def _offer(formats: str, rtpmaps: list[str], *, port: int = 40000) -> str:
    lines = [
        "v=0",
        "o=caller 1 1 IN IP4 127.0.0.1",
        "s=-",
        "c=IN IP4 127.0.0.1",
        "t=0 0",
        f"m=audio {port} RTP/AVP {formats} 101",
        *[f"a=rtpmap:{m}" for m in rtpmaps],
        "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15",
        "a=ptime:20",
        "a=sendrecv",
    ]
    return "\r\n".join(lines) + "\r\n"


def _chosen(sdp: str) -> tuple[int, str]:
    offer = parse_sdp(sdp)
    rtp = RtpSession(
        local_ip="127.0.0.1", rtp_port=free_udp_port() & ~1, offer=offer, supported_codecs=answer_codecs(offer)
    )
    audio = rtp.sdp_answer.audio
    assert audio is not None
    return rtp.chosen_payload_type, audio.attributes["rtpmap"][0]


@pytest.mark.unit
@pytest.mark.parametrize(
    ("formats", "rtpmaps", "chosen", "rtpmap"),
    [
        ("9 0 8", ["9 G722/8000", "0 PCMU/8000", "8 PCMA/8000"], 9, "9 G722/8000"),
        # Listed after PCMU (as many PBXs list it) and still chosen: the pipeline's rate, no resampling.
        ("0 9", ["0 PCMU/8000", "9 G722/8000"], 9, "9 G722/8000"),
        ("0", ["0 PCMU/8000"], 0, "0 PCMU/8000"),
        ("8 0", ["8 PCMA/8000", "0 PCMU/8000"], 8, "8 PCMA/8000"),  # G.711: the caller's order
    ],
)
def test_answer_prefers_g722_then_the_callers_g711(formats: str, rtpmaps: list[str], chosen: int, rtpmap: str) -> None:
    assert _chosen(_offer(formats, rtpmaps)) == (chosen, rtpmap)


@pytest.mark.unit
def test_offer_without_a_common_codec_is_not_negotiated() -> None:
    # The endpoint answers this SdpNegotiationError with 488 (test_g729_only_invite_gets_488 below, end to end).
    with pytest.raises(SdpNegotiationError):
        _chosen(_offer("18 3", ["18 G729/8000", "3 GSM/8000"]))


@pytest.mark.unit
async def test_agent_audio_leaves_as_g722_packets_at_16_khz() -> None:
    """100 ms of 16 kHz audio: five 160-byte payloads, timestamps 160 apart, and a 5 kHz tone that survives."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(2.0)
    offer = parse_sdp(_offer("0 9", ["0 PCMU/8000", "9 G722/8000"], port=peer.getsockname()[1]))
    rtp = RtpSession(
        local_ip="127.0.0.1", rtp_port=free_udp_port() & ~1, offer=offer, supported_codecs=answer_codecs(offer)
    )
    await rtp.start()
    try:
        audio = AudioFormat.of(rtp)
        assert (audio.rate, audio.clock_rate, audio.packet_samples, audio.packet_ticks) == (16000, 8000, 320, 160)
        output = RtpOutput(rtp, TransportParams(audio_out_sample_rate=16000), is_held=lambda: False, audio=audio)
        t = np.arange(1600) / 16000
        tone = (8000 * np.sin(2 * np.pi * 5000 * t)).astype(np.int16)
        await output.write_audio_frame(OutputAudioRawFrame(audio=tone.tobytes(), sample_rate=16000, num_channels=1))
        packets = [await asyncio.to_thread(peer.recv, 2048) for _ in range(5)]
    finally:
        await rtp.close()
        peer.close()
    assert {p[1] & 0x7F for p in packets} == {WIDEBAND}
    assert [len(p) - 12 for p in packets] == [160] * 5
    stamps = [int.from_bytes(p[4:8], "big") for p in packets]
    assert [(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)] == [160] * 4
    decoded = np.asarray(G722(16000, 64000).decode(b"".join(p[12:] for p in packets)), dtype=np.float64)
    assert len(decoded) == 1600
    spectrum = np.abs(np.fft.rfft(decoded[320:]))  # past the codec's start-up
    assert abs(np.argmax(spectrum) * 16000 / len(decoded[320:]) - 5000) < 50  # above G.711's 4 kHz Nyquist


class _Dialog:
    """A bare UAC over UDP for one dialog: requests written as RFC 3261 says, responses read back."""

    def __init__(self, server: SipServer, host: str = "127.0.0.1") -> None:
        self.server = server
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.sock.settimeout(10.0)
        self.port = self.sock.getsockname()[1]
        self.call_id = uuid.uuid4().hex
        self.to = f"<sip:+15550100@127.0.0.1:{server.sip_port}>"
        self.target = f"sip:+15550100@127.0.0.1:{server.sip_port}"

    def send(self, method: str, cseq: int, sdp: str = "") -> None:
        headers = [
            f"{method} {self.target} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK-{uuid.uuid4().hex[:16]}",
            f"From: <sip:+15559990001@{self.host}:{self.port}>;tag={self.call_id[:8]}",
            f"To: {self.to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {'INVITE' if method == 'ACK' else method}",
            f"Contact: <sip:+15559990001@{self.host}:{self.port}>",
            "Max-Forwards: 70",
        ]
        if sdp:
            headers.append("Content-Type: application/sdp")
        headers.append(f"Content-Length: {len(sdp.encode())}")
        self.sock.sendto(("\r\n".join(headers) + "\r\n\r\n" + sdp).encode(), ("127.0.0.1", self.server.sip_port))

    def final(self) -> tuple[int, str]:
        """The final response to the request just sent (status, text); the dialog's To tag and Contact kept."""
        while True:
            text = self.sock.recv(65535).decode()
            status = int(text.split(" ", 2)[1])
            if status >= 200:
                break
        if status < 300:
            for line in text.split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower() in ("to", "t"):
                    self.to = value.strip()
                elif name.strip().lower() in ("contact", "m"):
                    self.target = value.strip().strip("<>").split(">")[0]
        return status, text

    def close(self) -> None:
        self.sock.close()


@pytest.mark.e2e
def test_g729_only_invite_gets_488(sip_server: SipServer) -> None:
    dialog = _Dialog(sip_server)
    try:
        dialog.send("INVITE", 1, _offer("18", ["18 G729/8000"]))
        assert dialog.final()[0] == 488
    finally:
        dialog.close()


@pytest.mark.e2e
def test_g722_call_keeps_its_codec_on_hold_and_resume(sip_server: SipServer) -> None:
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # where the agent's RTP goes
    media.bind(("127.0.0.1", 0))
    media.settimeout(5.0)
    dialog = _Dialog(sip_server)
    port = media.getsockname()[1]
    try:
        dialog.send("INVITE", 1, _offer("0 9", ["0 PCMU/8000", "9 G722/8000"], port=port))
        status, answer = dialog.final()
        assert status == 200 and "m=audio" in answer and " RTP/AVP 9" in answer, answer
        dialog.send("ACK", 1)
        packet = media.recv(2048)  # the greeting, in G.722
        assert packet[1] & 0x7F == WIDEBAND and len(packet) - 12 == 160
        for cseq, direction, answered in ((2, "sendonly", "recvonly"), (3, "sendrecv", "sendrecv")):
            offer = _offer("9 0", ["9 G722/8000", "0 PCMU/8000"], port=port)
            dialog.send("INVITE", cseq, offer.replace("a=sendrecv", f"a={direction}"))
            status, answer = dialog.final()
            assert status == 200 and " RTP/AVP 9" in answer and "a=rtpmap:9 G722/8000" in answer, answer
            assert f"a={answered}" in answer, answer
            dialog.send("ACK", cseq)
        dialog.send("BYE", 4)
        assert dialog.final()[0] == 200
    finally:
        dialog.close()
        media.close()
    deadline = time.monotonic() + 30
    last = "SELECT metadata, end_reason FROM calls WHERE channel = 'sip' ORDER BY started_at DESC LIMIT 1"
    while (row := sip_server.voice.query(last)[0])[1] is None:
        assert time.monotonic() < deadline, "the call did not end"
        time.sleep(0.2)  # polling a separate process's database: nothing to await
    assert json.loads(row[0])["codec"] == WIDEBAND and row[1] == "caller_hangup", row


@pytest.mark.e2e
def test_busy_message_reaches_a_g722_caller(sip_server: SipServer) -> None:
    """The busy trunk's one line held by a G.722 call; the next G.722 caller hears the (resampled) busy message."""
    media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    media.bind((BUSY_TRUNK_IP, 0))
    media.settimeout(5.0)
    g722_only = _offer("9", ["9 G722/8000"], port=media.getsockname()[1]).replace("127.0.0.1", BUSY_TRUNK_IP)
    holding, busy = _Dialog(sip_server, BUSY_TRUNK_IP), _Dialog(sip_server, BUSY_TRUNK_IP)
    try:
        holding.send("INVITE", 1, g722_only.replace(f" {media.getsockname()[1]} ", " 9 "))  # its RTP: discard port
        assert holding.final()[0] == 200
        holding.send("ACK", 1)
        busy.send("INVITE", 1, g722_only)
        status, answer = busy.final()
        assert status == 200 and " RTP/AVP 9" in answer, answer
        busy.send("ACK", 1)
        packets = [media.recv(2048) for _ in range(100)]  # 2 s of the message
        busy.send("BYE", 2)
        assert busy.final()[0] == 200
        holding.send("BYE", 2)
        assert holding.final()[0] == 200
    finally:
        holding.close()
        busy.close()
        media.close()
    assert {p[1] & 0x7F for p in packets} == {WIDEBAND}
    stamps = [int.from_bytes(p[4:8], "big") for p in packets]
    assert {(b - a) & 0xFFFFFFFF for a, b in itertools.pairwise(stamps)} == {160}
    pcm = np.asarray(G722(16000, 64000).decode(b"".join(p[12:] for p in packets)), dtype=np.int16)
    assert len(pcm) == 100 * 320 and speech_frames(pcm, 16000) > 25  # the message's voice, not silence


@pytest.mark.e2e
@pytest.mark.slow
def test_baresip_g722_call_is_answered_in_wideband(sip_server: SipServer, tmp_path: Path) -> None:
    before = sip_server.voice.query("SELECT count(*) FROM calls WHERE channel = 'sip'")[0][0]
    call = call_with_baresip(sip_server, tmp_path, codec="G722", caller="+15559990002", rtp_ports="43000-43998")
    output = call.output
    calls = sip_server.voice.query("SELECT id, metadata FROM calls WHERE channel = 'sip' ORDER BY started_at")
    assert len(calls) == before + 1, output
    call_id, meta = calls[-1]
    assert json.loads(meta)["codec"] == WIDEBAND, meta
    turns = sip_server.voice.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    assert any(role == "caller" and "password" in text.lower() for role, text in turns), turns
    assert any(
        role == "agent" and ("password" in text.lower() or "reset link" in text.lower()) for role, text in turns[1:]
    ), turns
    assert call.rate == 16000, output  # what baresip decoded from the agent's G.722
    assert speech_frames(call.heard, call.rate) > 150, output  # > 3 s of the agent's voice
    # The recording (16 kHz, caller left, agent right) is registered once the call has ended.
    deadline = time.monotonic() + 30
    while not (
        rows := sip_server.voice.query("SELECT path, sample_rate, channels FROM recordings WHERE call_id = ?", call_id)
    ):
        assert time.monotonic() < deadline, "no recording registered"
        time.sleep(0.2)  # polling a separate process's database: nothing to await
    path, sample_rate, channels = rows[0]
    assert (sample_rate, channels) == (16000, 2)
    with wave.open(path) as handle:
        stereo = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).reshape(-1, 2)
    assert speech_frames(stereo[:, 0], 16000) > 50  # the caller's question
    assert speech_frames(stereo[:, 1], 16000) > 150  # the agent's answer
