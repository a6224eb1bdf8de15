"""Real SIP calls from sipp to ``voxdesk serve``: a spoken question answered as RTP, DTMF, CANCEL, BYE, hold,
malformed INVITEs, trunk limits and digest login. One server for the package (``conftest.sip_server``)."""

from __future__ import annotations

import contextlib
import re
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.sip.conftest import (
    BUSY_TRUNK_IP,
    CALLER,
    LIMITED_TRUNK_IP,
    PBX_IP,
    PBX_PASSWORD,
    PBX_USER,
    RtpCapture,
    SipServer,
    free_udp_port,
    question_ulaw,
    run_sipp,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _calls(server: SipServer) -> list[tuple[str, ...]]:
    return server.voice.query(
        "SELECT id, channel, status, end_reason, outcome, caller_number FROM calls WHERE channel = 'sip' "
        "ORDER BY started_at"
    )


def _wait_for(predicate: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)  # polling a separate process's database: nothing to await
    raise AssertionError("condition not met in time")


def _statuses(messages: str) -> list[int]:
    return [int(m) for m in re.findall(r"^SIP/2\.0 (\d{3})", messages, flags=re.MULTILINE)]


def _speech_frames(pcm: np.ndarray) -> int:
    """20 ms frames loud enough to be speech (the agent's silence is sent as nothing or near zero)."""
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    return int((np.sqrt((frames**2).mean(axis=1)) > 300).sum())


def _syllable_onsets(pcm: np.ndarray) -> int:
    """Quiet-to-loud transitions: speech has many, a tone or noise burst has one."""
    frames = pcm[: len(pcm) // 160 * 160].reshape(-1, 160).astype(np.float64)
    loud = np.sqrt((frames**2).mean(axis=1)) > 300
    return int((loud[1:] & ~loud[:-1]).sum())


def test_spoken_question_is_answered_over_rtp(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    question_ulaw(tmp_path, "How do I reset my password?")
    before = len(_calls(sip_server))
    run = run_sipp(sip_server, "question", tmp_path, rtp_port=rtp_capture.port, stay_ms=15_000)
    assert run.returncode == 0, run.stdout
    assert _statuses(run.messages)[-2:] == [200, 200]  # the INVITE answered, then our BYE
    calls = _calls(sip_server)
    assert len(calls) == before + 1
    call_id, channel, status, reason, _outcome, number = calls[-1]
    assert (channel, status, reason, number) == ("sip", "ended", "caller_hangup", CALLER)
    # The agent's voice came back as PCMU RTP: the greeting and the answer, seconds of syllables.
    assert rtp_capture.payload_types == {0}
    pcm = rtp_capture.pcm()
    assert _speech_frames(pcm) > 150, _speech_frames(pcm)  # > 3 s of speech
    assert _syllable_onsets(pcm) > 10
    turns = sip_server.voice.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    caller = [text for role, text in turns if role == "caller"]
    agent = [text.lower() for role, text in turns if role == "agent"]
    assert any("password" in text for text in caller), turns
    assert any("password" in text or "reset link" in text for text in agent[1:]), turns
    # The caller ID is stored, never logged.
    assert CALLER not in sip_server.voice.log_path.read_text()
    latency = sip_server.voice.query("SELECT latency_p50_ms FROM calls WHERE id = ?", call_id)
    assert latency[0][0] is not None


def test_dtmf_zero_requests_a_handoff(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    run = run_sipp(sip_server, "dtmf", tmp_path, rtp_port=rtp_capture.port, stay_ms=4000)
    assert run.returncode == 0, run.stdout
    call_id = _calls(sip_server)[-1][0]
    events = sip_server.voice.query("SELECT kind, data FROM call_events WHERE call_id = ?", call_id)
    assert ("dtmf", '{"digit": "0"}') in [(k, d) for k, d in events], events
    _wait_for(lambda: sip_server.voice.query("SELECT source FROM handoffs WHERE call_id = ?", call_id))
    assert sip_server.voice.query("SELECT source FROM handoffs WHERE call_id = ?", call_id) == [("dtmf",)]


def test_sip_info_dtmf_requests_a_handoff(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    run = run_sipp(sip_server, "dtmf_info", tmp_path, rtp_port=rtp_capture.port, stay_ms=3000)
    assert run.returncode == 0, run.stdout
    call_id = _calls(sip_server)[-1][0]
    _wait_for(lambda: sip_server.voice.query("SELECT source FROM handoffs WHERE call_id = ?", call_id))


def test_call_over_tcp(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    # sipp over one TCP connection (-t t1) to the same port: INVITE/200/ACK/BYE framed by Content-Length.
    question_ulaw(tmp_path, "Hello.")
    before = len(_calls(sip_server))
    run = run_sipp(sip_server, "question", tmp_path, rtp_port=rtp_capture.port, stay_ms=8000, extra=("-t", "t1"))
    assert run.returncode == 0, run.stdout
    assert "Via: SIP/2.0/TCP" in run.messages
    assert _statuses(run.messages)[-2:] == [200, 200]
    assert len(_calls(sip_server)) == before + 1
    # The caller's BYE is answered at once; the call's end is stored just after.
    _wait_for(lambda: _calls(sip_server)[-1][2] == "ended")
    assert _calls(sip_server)[-1][1:4] == ("sip", "ended", "caller_hangup")
    assert _speech_frames(rtp_capture.pcm()) > 50  # the greeting came back as RTP


def test_cancel_before_answer(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    run = run_sipp(sip_server, "cancel", tmp_path, rtp_port=rtp_capture.port)
    assert run.returncode == 0, run.stdout
    assert 487 in _statuses(run.messages)
    # Nothing is left holding the line: the next call is answered.
    run = run_sipp(sip_server, "hold", tmp_path, rtp_port=rtp_capture.port)
    assert run.returncode == 0, run.stdout


def test_hold_and_resume_with_reinvite(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    log = tmp_path / "hold_actions.log"
    run = run_sipp(
        sip_server, "hold", tmp_path, rtp_port=rtp_capture.port, extra=("-trace_logs", "-log_file", str(log))
    )
    assert run.returncode == 0, run.stdout
    logs = log.read_text()
    assert "answer2 a=recvonly" in logs and "answer3 a=sendrecv" in logs, logs


def test_agent_hangs_up_with_bye(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    # Nobody speaks: the silence timeout (12 s here) ends the call from the agent's side with a BYE.
    run = run_sipp(sip_server, "agent_bye", tmp_path, rtp_port=rtp_capture.port, timeout_s=60)
    assert run.returncode == 0, run.stdout
    assert _calls(sip_server)[-1][3] == "silence_timeout"


def test_malformed_invite_gets_400_and_the_next_call_works(
    sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(3)
        port = sock.getsockname()[1]
        # No CSeq, no Max-Forwards, no To (RFC 3261 8.1.1): 400.
        bad = (
            "INVITE sip:+15550100@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKbad1\r\n"
            "From: <sip:x@127.0.0.1>;tag=1\r\nCall-ID: bad-1\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(bad.encode(), ("127.0.0.1", sip_server.sip_port))
        assert sock.recv(4096).startswith(b"SIP/2.0 400 ")
        # Garbage and an oversized datagram are dropped without an answer.
        sock.sendto(b"\x00\xffnot sip at all", ("127.0.0.1", sip_server.sip_port))
        sock.sendto(
            b"OPTIONS sip:x SIP/2.0\r\n" + b"X: " + b"a" * 20_000 + b"\r\n\r\n", ("127.0.0.1", sip_server.sip_port)
        )
        with pytest.raises(TimeoutError):
            sock.recv(4096)
        # An unknown method: 405 with Allow.
        options = (
            "SUBSCRIBE sip:+15550100@127.0.0.1 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bKsub1\r\n"
            "From: <sip:x@127.0.0.1>;tag=2\r\nTo: <sip:+15550100@127.0.0.1>\r\nCall-ID: sub-1\r\n"
            "CSeq: 1 SUBSCRIBE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
        )
        sock.sendto(options.encode(), ("127.0.0.1", sip_server.sip_port))
        reply = sock.recv(4096).decode()
        assert reply.startswith("SIP/2.0 405 ") and "Allow: INVITE" in reply
    run = run_sipp(sip_server, "hold", tmp_path, rtp_port=rtp_capture.port)
    assert run.returncode == 0, run.stdout


@contextlib.contextmanager
def _line_held(sip_server: SipServer, rtp_capture: RtpCapture, workdir: Path, source_ip: str) -> Iterator[None]:
    """A 6-second call from ``source_ip`` holds its trunk's one line while the block runs."""
    workdir.mkdir()
    question_ulaw(workdir, "Hello.")
    before = len(_calls(sip_server))
    holder = subprocess.Popen(
        [
            "sipp",
            f"127.0.0.1:{sip_server.sip_port}",
            "-sf",
            str(Path(__file__).parent / "scenarios" / "question.xml"),
            "-i",
            source_ip,
            "-mi",
            source_ip,
            "-p",
            str(free_udp_port()),
            "-mp",
            str(free_udp_port() & ~1),
            "-set",
            "caller",
            CALLER,
            "-set",
            "dialled",
            "+15550100",
            "-set",
            "rtp_port",
            str(rtp_capture.port),
            "-d",
            "6000",
            "-m",
            "1",
            "-nostdin",
            "-timeout",
            "60s",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: any(c[2] == "active" for c in _calls(sip_server)[before:]), timeout_s=20)
        yield
    finally:
        assert holder.wait(timeout=60) == 0


def test_trunk_over_its_limit_gets_486(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    # The "small" trunk (127.0.0.2) carries one call: a first call holds it, a second is refused 486.
    with _line_held(sip_server, rtp_capture, tmp_path / "first", LIMITED_TRUNK_IP):
        run = run_sipp(sip_server, "refused", tmp_path, rtp_port=rtp_capture.port, local_ip=LIMITED_TRUNK_IP)
        assert run.returncode == 0, run.stdout
        assert 486 in _statuses(run.messages)


def test_call_over_the_limit_hears_the_busy_message(
    sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path
) -> None:
    # The "busy" trunk (127.0.0.5) carries one call and answers the next: the busy message, then our BYE.
    busy_capture = RtpCapture(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    busy_capture.sock.bind((BUSY_TRUNK_IP, 0))  # the SDP of a call from 127.0.0.5 announces that address
    thread = threading.Thread(target=busy_capture.run, daemon=True)
    thread.start()
    try:
        with _line_held(sip_server, rtp_capture, tmp_path / "first", BUSY_TRUNK_IP):
            calls_before = len(_calls(sip_server))
            run = run_sipp(sip_server, "agent_bye", tmp_path, rtp_port=busy_capture.port, local_ip=BUSY_TRUNK_IP)
            assert run.returncode == 0, run.stdout  # answered 200, then a BYE from Voxdesk that sipp answered
            assert 200 in _statuses(run.messages) and re.search(r"^BYE sip:", run.messages, flags=re.MULTILINE)
            assert len(_calls(sip_server)) == calls_before  # no call record: nobody was put through
    finally:
        busy_capture.close()
        thread.join(timeout=2)
    # What came back is the spoken message: seconds of syllables, as PCMU.
    assert busy_capture.payload_types == {0}
    pcm = busy_capture.pcm()
    assert _speech_frames(pcm) > 100, _speech_frames(pcm)
    assert _syllable_onsets(pcm) > 8


def test_pbx_logs_in_with_digest(sip_server: SipServer, rtp_capture: RtpCapture, tmp_path: Path) -> None:
    # The "pbx" trunk (127.0.0.3) must log in: challenged 401, then admitted with the right password only.
    run = run_sipp(
        sip_server,
        "digest",
        tmp_path,
        rtp_port=rtp_capture.port,
        local_ip=PBX_IP,
        extra=("-au", PBX_USER, "-ap", PBX_PASSWORD),
    )
    assert run.returncode == 0, run.stdout
    assert _statuses(run.messages)[:3] == [100, 401, 100]
    wrong = run_sipp(
        sip_server,
        "digest",
        tmp_path,
        rtp_port=rtp_capture.port,
        local_ip=PBX_IP,
        # Refused, sipp takes the second 401 for a retransmission of the first and would wait out its global
        # timeout for a 200 that never comes: a receive timeout ends the refused call in seconds instead.
        extra=("-au", PBX_USER, "-ap", "nope", "-recv_timeout", "3000"),
    )
    assert wrong.returncode != 0
    assert _statuses(wrong.messages).count(401) == 2
