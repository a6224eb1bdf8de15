"""SIP fixtures: ``voxdesk serve`` with its SIP endpoint on a free UDP port, sipp as the caller, an RTP capture.

sipp places the calls (``scenarios/*.xml``); its SDP announces the capture socket's port, so the agent's RTP
lands here to be decoded, while sipp streams the caller's audio (``rtp_stream``, headerless μ-law) from its own
port. Loopback addresses stand for trunks: 127.0.0.2 is a trunk limited to one call, 127.0.0.3 a PBX that must
log in (digest), 127.0.0.5 a one-call trunk answering calls over its limit with the busy message, any other
127.x is the development loopback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.conftest import VoiceServer, start_server, stop_server
from tests.pipelines.conftest import whisper_model_dir

SCENARIOS = Path(__file__).parent / "scenarios"
CALLER = "+15551230000"
DIALLED = "+15550100"
LIMITED_TRUNK_IP = "127.0.0.2"
PBX_IP = "127.0.0.3"
PBX_USER, PBX_PASSWORD = "pbx", "pbx-secret-1"
PROXY_IP = "127.0.0.4"  # kamailio, the digest-authenticating proxy in front (test_kamailio.py)
BUSY_TRUNK_IP = "127.0.0.5"  # a trunk limited to one call whose calls over it hear the busy message


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ulaw_to_pcm(payload: bytes) -> np.ndarray:
    """G.711 μ-law bytes to 16-bit samples (ITU-T G.711 expansion)."""
    u = ~np.frombuffer(payload, dtype=np.uint8)
    sign = u & 0x80
    exponent = (u >> 4) & 0x07
    mantissa = u & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    samples = magnitude - 0x84
    return np.where(sign != 0, -samples, samples).astype(np.int16)


def question_ulaw(directory: Path, text: str, *, voice: str = "slt", lead_s: float = 3.0, tail_s: float = 3.0) -> Path:
    """``text`` spoken by flite as headerless 8 kHz μ-law (what sipp's rtp_stream plays), silence around it."""
    wav = directory / "question.wav"
    subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
    out = directory / "question.ulaw"
    subprocess.run(
        [
            "sox",
            str(wav),
            "-r",
            "8000",
            "-c",
            "1",
            "-e",
            "mu-law",
            "-t",
            "raw",
            str(out),
            "pad",
            str(lead_s),
            str(tail_s),
        ],
        check=True,
    )
    return out


@dataclass
class RtpCapture:
    """A UDP socket that keeps the RTP payloads (PCMU) sent to it."""

    sock: socket.socket
    payloads: list[bytes] = field(default_factory=list)
    payload_types: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def run(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                data = self.sock.recv(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if len(data) < 12 or data[0] >> 6 != 2:
                continue
            csrc = data[0] & 0x0F
            self.payload_types.add(data[1] & 0x7F)
            if data[1] & 0x7F == 0:
                self.payloads.append(data[12 + 4 * csrc :])

    def pcm(self) -> np.ndarray:
        return ulaw_to_pcm(b"".join(self.payloads)) if self.payloads else np.zeros(0, dtype=np.int16)

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


@pytest.fixture
def rtp_capture() -> Iterator[RtpCapture]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    capture = RtpCapture(sock)
    thread = threading.Thread(target=capture.run, daemon=True)
    thread.start()
    yield capture
    capture.close()
    thread.join(timeout=2)


@dataclass
class SipServer:
    """The running product and its SIP port."""

    voice: VoiceServer
    sip_port: int


@dataclass
class SippRun:
    returncode: int
    messages: str
    stdout: str


def run_sipp(
    server: SipServer,
    scenario: str,
    workdir: Path,
    *,
    rtp_port: int,
    local_ip: str = "127.0.0.1",
    stay_ms: int = 1000,
    calls: int = 1,
    concurrent: int = 1,
    timeout_s: float = 120.0,
    extra: tuple[str, ...] = (),
    target: str | None = None,
) -> SippRun:
    """Place ``calls`` calls with ``scenarios/<scenario>.xml``; the SIP messages exchanged come back as text."""
    log = workdir / f"{scenario}_messages.log"
    sip_port = free_udp_port()
    args = [
        "sipp",
        target or f"127.0.0.1:{server.sip_port}",
        "-sf",
        str(SCENARIOS / f"{scenario}.xml"),
        "-i",
        local_ip,
        "-mi",
        local_ip,
        "-p",
        str(sip_port),
        "-mp",
        str(free_udp_port() & ~1),
        "-set",
        "caller",
        CALLER,
        "-set",
        "dialled",
        DIALLED,
        "-set",
        "rtp_port",
        str(rtp_port),
        "-d",
        str(stay_ms),
        "-m",
        str(calls),
        "-l",
        str(concurrent),
        "-r",
        str(concurrent),
        "-timeout",
        f"{int(timeout_s)}s",
        "-timeout_error",
        "-trace_msg",
        "-message_file",
        str(log),
        "-nostdin",
        *extra,
    ]
    proc = subprocess.run(args, cwd=workdir, capture_output=True, text=True, timeout=timeout_s + 30, check=False)
    messages = log.read_text(errors="replace") if log.exists() else ""
    return SippRun(returncode=proc.returncode, messages=messages, stdout=proc.stdout[-3000:] + proc.stderr[-3000:])


@pytest.fixture(scope="package")
def sip_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SipServer]:
    """``python -m agent serve`` with SIP on a free UDP port, two trunks and a route."""
    root = tmp_path_factory.mktemp("sip-e2e")
    sip_port = free_udp_port()
    trunks = [
        {"name": "small", "addresses": [LIMITED_TRUNK_IP], "max_calls": 1},
        {"name": "pbx", "addresses": [PBX_IP], "username": PBX_USER, "password": PBX_PASSWORD, "max_calls": 5},
        {"name": "proxy", "addresses": [PROXY_IP], "max_calls": 5},
        {"name": "busy", "addresses": [BUSY_TRUNK_IP], "max_calls": 1, "busy_message": True},
    ]
    proc, server = start_server(
        root / "data",
        extra_env={
            "VOXDESK_TELEPHONY__SIP_PORT": str(sip_port),
            "VOXDESK_TELEPHONY__TRUNKS": json.dumps(trunks),
            "VOXDESK_TELEPHONY__ROUTES": json.dumps({DIALLED: "default"}),
            # The silence timer runs from the caller's last words: longer than any scenario's quiet after them (the
            # longest: the question ends ~6 s in, the caller's BYE comes at 15 s in test_spoken_question...), short,
            # since test_agent_hangs_up_with_bye waits it out.
            "VOXDESK_VOICE__SILENCE_TIMEOUT_SECS": "12",
            # Phone audio is 8 kHz: pocketsphinx's bundled model is wideband (16 kHz) and mishears it (see
            # docs/telephony.md); Whisper tiny.en (installed by ./scripts/bootstrap) hears it well.
            "VOXDESK_PIPELINE__ASR__BACKEND": "faster-whisper",
            "VOXDESK_PIPELINE__ASR__MODEL_PATH": str(whisper_model_dir()),
        },
    )
    try:
        yield SipServer(voice=server, sip_port=sip_port)
    finally:
        stop_server(proc)
