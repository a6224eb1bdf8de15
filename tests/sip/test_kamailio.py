"""Kamailio (Debian's 5.6) as the SIP proxy in front of Voxdesk, the way a carrier or PBX edge reaches it:
the proxy challenges the caller (407, digest), record-routes and relays; Voxdesk admits the proxy as a trunk by
its address. Uses the package's one server (``conftest.sip_server``)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sip.conftest import PROXY_IP, RtpCapture, SipServer, free_udp_port, question_ulaw, run_sipp

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONFIG = Path(__file__).parent / "kamailio" / "kamailio.cfg"
PASSWORD = "caller-pw-1"


@pytest.fixture
def proxy(sip_server: SipServer, tmp_path: Path) -> Iterator[int]:
    port = free_udp_port()
    config = tmp_path / "kamailio.cfg"
    text = CONFIG.read_text()
    for key, value in {
        "PROXY_PORT": port,
        "VOXDESK_PORT": sip_server.sip_port,
        "PASSWORD": PASSWORD,
        "PROXY_IP": PROXY_IP,
    }.items():
        text = text.replace(f"@{key}@", str(value))
    config.write_text(text)
    log = (tmp_path / "kamailio.log").open("wb")
    proc = subprocess.Popen(
        ["kamailio", "-f", str(config), "-DD", "-E", "-w", str(tmp_path), "-P", str(tmp_path / "kamailio.pid")],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    time.sleep(1.5)  # kamailio binds and forks its workers; there is no readiness signal to wait on
    assert proc.poll() is None, (tmp_path / "kamailio.log").read_text()[-2000:]
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its workers can outlast SIGTERM on a loaded machine
            proc.kill()
            proc.wait(timeout=10)


def test_call_through_kamailio_with_digest(
    sip_server: SipServer, proxy: int, rtp_capture: RtpCapture, tmp_path: Path
) -> None:
    question_ulaw(tmp_path, "How do I reset my password?")
    run = run_sipp(
        sip_server,
        "proxy_digest",
        tmp_path,
        rtp_port=rtp_capture.port,
        stay_ms=3000,
        target=f"{PROXY_IP}:{proxy}",
        extra=("-au", "caller", "-ap", PASSWORD),
    )
    assert run.returncode == 0, run.stdout + (tmp_path / "kamailio.log").read_text()[-2000:]
    assert 407 in [int(line[8:11]) for line in run.messages.splitlines() if line.startswith("SIP/2.0 ")]
    rows = sip_server.voice.query("SELECT metadata FROM calls WHERE channel = 'sip' ORDER BY started_at")
    assert '"trunk": "proxy"' in rows[-1][0]
    assert rtp_capture.payloads  # media flowed end to end (the proxy only carries signalling)
    wrong = run_sipp(
        sip_server,
        "proxy_digest",
        tmp_path,
        rtp_port=rtp_capture.port,
        target=f"{PROXY_IP}:{proxy}",
        # Refused: a receive timeout ends the call in seconds rather than sipp's global timeout (see
        # test_sip_calls.test_pbx_logs_in_with_digest).
        extra=("-au", "caller", "-ap", "wrong", "-recv_timeout", "3000"),
    )
    assert wrong.returncode != 0
