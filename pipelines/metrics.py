"""Prometheus metrics of the voice pipeline (default registry; the API's ``/metrics`` exposes them)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

TURN_LATENCY = Histogram(
    "voxdesk_pipeline_turn_latency_seconds",
    "Voice-to-voice latency per turn (caller's last voiced frame to the agent's first audio out) as stage=total, "
    "and its split: stage=vad|asr|retrieval|llm|tts.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0, 5.0),
)
BARGE_IN_REACTION = Histogram(
    "voxdesk_pipeline_barge_in_seconds",
    "Caller speech onset to the agent's audio being interrupted.",
    buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0, 2.0),
)
BARGE_IN_IGNORED = Counter(
    "voxdesk_pipeline_barge_in_ignored_total",
    "Caller speech during agent audio that did not interrupt: reason=backchannel|echo.",
    ["reason"],
)
VAD_FAST_ONSETS = Counter(
    "voxdesk_pipeline_vad_fast_onsets_total",
    "VAD windows the echo-aware gate passed at once while the agent spoke (the caller, louder than its echo).",
)

ASR_WORKER_EXITS = Counter(
    "voxdesk_pipeline_asr_worker_exits_total",
    "Recogniser worker processes that exited unexpectedly (their utterances in progress failed; each is replaced).",
)
