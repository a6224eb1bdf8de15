"""A second, independent SIP implementation calls Voxdesk: Debian's baresip softphone (libre/baresip 1.0).

baresip dials the server from its own SIP/RTP stack, plays a flite question from a WAV file (``aufile``) and
records what it hears; the call is then checked in the database (channel, caller ID, transcript) and in the
recording (the agent's voice). Uses the package's one server (``conftest.sip_server``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sip.baresip import call_with_baresip, speech_frames
from tests.sip.conftest import SipServer

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_baresip_softphone_call_is_answered(sip_server: SipServer, tmp_path: Path) -> None:
    before = sip_server.voice.query("SELECT count(*) FROM calls WHERE channel = 'sip'")[0][0]
    call = call_with_baresip(sip_server, tmp_path, codec="PCMU", caller="+15559990000", rtp_ports="42000-42998")
    calls = sip_server.voice.query(
        "SELECT id, status, caller_number FROM calls WHERE channel = 'sip' ORDER BY started_at"
    )
    assert len(calls) == before + 1, call.output
    call_id, _status, number = calls[-1]
    assert number == "+15559990000"
    turns = sip_server.voice.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    assert any(role == "caller" and "password" in text.lower() for role, text in turns), turns
    assert any(
        role == "agent" and ("password" in text.lower() or "reset link" in text.lower()) for role, text in turns[1:]
    ), turns
    assert speech_frames(call.heard, call.rate) > 150, call.output  # > 3 s of the agent's voice heard by baresip
