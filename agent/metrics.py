"""Prometheus metrics of the voice side that ``control_api.metrics`` does not already define."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SINK_FAILURES = Counter(
    "voxdesk_call_sink_failures_total",
    "Transcript, latency or event records the call sink failed to persist.",
    ["kind"],
)
CALLS_REJECTED = Counter(
    "voxdesk_calls_rejected_total",
    "Calls refused at admission (capacity, rate limit, embed key).",
    ["channel", "reason"],
)
WEBRTC_INPUT_BATCH = Histogram(
    "voxdesk_webrtc_input_batch_frames",
    "20 ms caller frames handed to a call's pipeline per read; above 1 the event loop had fallen behind real time.",
    buckets=(1, 2, 3, 4, 5),
)
