"""Which server addresses a WebRTC answer reveals (``agent.transports.ice_policy``), on a real aiortc answer."""

from __future__ import annotations

import pytest
from aiortc import RTCPeerConnection
from aiortc.sdp import SessionDescription

from agent.transports.ice_policy import CandidatePolicy

pytestmark = pytest.mark.unit

SDP_LINES = [
    "a=candidate:1 1 udp 2130706431 10.1.2.3 40000 typ host",
    "a=candidate:2 1 udp 2130706431 192.168.1.9 40001 typ host",
    "a=candidate:3 1 udp 2130706431 127.0.0.1 40002 typ host",
    "a=candidate:4 1 udp 2130706431 fe80::1 40003 typ host",
    "a=candidate:5 1 udp 1694498815 93.184.216.34 40004 typ srflx raddr 10.1.2.3 rport 40000",
    "a=candidate:6 1 udp 2130706431 3f2a1b9c.local 40005 typ host",
]
SDP = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + "\r\n".join(SDP_LINES) + "\r\na=end-of-candidates\r\n"


def _addresses(sdp: str) -> list[str]:
    return [line.split()[4] for line in sdp.splitlines() if line.startswith("a=candidate:")]


def test_development_keeps_every_candidate() -> None:
    assert _addresses(CandidatePolicy().filter_sdp(SDP)) == [line.split()[4] for line in SDP_LINES]


def test_production_keeps_private_loopback_and_unknown_addresses_out() -> None:
    kept = _addresses(CandidatePolicy(keep_private=False).filter_sdp(SDP))
    assert kept == ["93.184.216.34"]


def test_announced_addresses_are_the_only_ones() -> None:
    policy = CandidatePolicy(announce=frozenset({"192.168.1.9"}), keep_private=False)
    assert _addresses(policy.filter_sdp(SDP)) == ["192.168.1.9"]
    filtered = policy.filter_sdp(SDP)
    assert "m=audio" in filtered and "a=end-of-candidates" in filtered


async def test_a_real_description_keeps_its_shape() -> None:
    # aiortc's own description with this machine's host candidates (no remote side: no ICE check is ever sent).
    peer = RTCPeerConnection()
    try:
        peer.addTransceiver("audio")
        await peer.setLocalDescription(await peer.createOffer())
        sdp = peer.localDescription.sdp
    finally:
        await peer.close()
    filtered = CandidatePolicy(keep_private=False).filter_sdp(sdp)
    assert all(not a.startswith(("10.", "192.168.", "127.", "172.")) for a in _addresses(filtered))
    assert len(SessionDescription.parse(filtered).media) == len(SessionDescription.parse(sdp).media)
