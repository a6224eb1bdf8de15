"""Prometheus metrics shared by the API and the voice side.

Metrics live in the default registry so one ``/metrics`` endpoint exposes everything in the process.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter("voxdesk_http_requests_total", "HTTP requests handled.", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "voxdesk_http_request_seconds",
    "HTTP request latency.",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
CALLS_STARTED = Counter("voxdesk_calls_started_total", "Calls started.", ["channel"])
CALLS_ENDED = Counter("voxdesk_calls_ended_total", "Calls ended.", ["channel", "outcome"])
KNOWLEDGE_QUESTIONS = Counter(
    "voxdesk_knowledge_questions_total",
    "Questions answered from the knowledge base (the logged ones: one per answered turn or API query), by "
    "outcome: found; not_found (best passage under the threshold); unanswerable (above it, but the question "
    "turns on a word the base never talks about); borderline (just under it: a confirming question).",
    ["outcome"],
)
DB_WRITE_RETRIES = Counter(
    "voxdesk_db_write_retries_total",
    "Database writes run again after a write conflict (SQLite busy, PostgreSQL serialization).",
)
CALLS_ACTIVE = Gauge("voxdesk_calls_active", "Calls in progress in this process.", ["channel"])
LOOP_LAG = Histogram(
    "voxdesk_event_loop_lag_seconds",
    "Event-loop scheduling lag measured by a periodic probe.",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0),
)
