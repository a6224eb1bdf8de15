"""Which of the server's addresses a WebRTC answer may reveal as ICE candidates.

aiortc gathers a host candidate for every interface address. A public deployment should not tell every caller its
private network: the operator names the addresses to announce, and in production private, loopback and link-local
candidates are left out by default. The filter works on the answer's SDP only; the sockets behind it stay as they are.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CandidatePolicy:
    """What the answer may announce.

    Attributes:
        announce: When set, the only candidate addresses kept.
        keep_private: Keep private, loopback and link-local candidates (development and LAN deployments).

    """

    announce: frozenset[str] = frozenset()
    keep_private: bool = True

    def allows(self, address: str) -> bool:
        """Whether a candidate on ``address`` may be announced."""
        if self.announce:
            return address in self.announce
        if self.keep_private:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # an mDNS name or anything else unknown is not announced in production
        return not (ip.is_private or ip.is_loopback or ip.is_link_local)

    def filter_sdp(self, sdp: str) -> str:
        """``sdp`` without the candidate lines this policy does not allow."""
        kept = []
        for line in sdp.splitlines():
            if line.startswith("a=candidate:"):
                fields = line.split()
                if len(fields) < 6 or not self.allows(fields[4]):
                    continue
            kept.append(line)
        return "\r\n".join(kept) + "\r\n"
