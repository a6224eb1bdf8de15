"""Prometheus metrics of the SIP endpoint."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

SIP_REQUESTS = Counter("voxdesk_sip_requests_total", "SIP requests received, by method.", ["method"])
SIP_REFUSED = Counter("voxdesk_sip_refused_total", "INVITEs refused, by SIP status.", ["status"])
SIP_DROPPED = Counter("voxdesk_sip_dropped_total", "SIP datagrams dropped before parsing (oversized).")
SIP_DTMF = Counter("voxdesk_sip_dtmf_total", "DTMF digits received, by kind (rfc4733, info).", ["kind"])
SIP_TRUNK_CALLS = Gauge("voxdesk_sip_trunk_calls", "Calls a trunk holds now.", ["trunk"])
SIP_LISTENING = Gauge("voxdesk_sip_listening", "1 while the SIP endpoint listens.")
SIP_BUSY_ANSWERED = Counter(
    "voxdesk_sip_busy_answered_total", "Calls over a trunk's limit answered with the busy message.", ["trunk"]
)
