"""Structured logs carry context and never caller data; the loop-lag probe measures a blocked loop."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
from typing import Any

import pytest
import structlog
from loguru import logger as loguru_logger

from control_api.logging_setup import TRACEBACK_CHARS, configure_logging, flush_logs
from control_api.looplag import LoopLagProbe

pytestmark = pytest.mark.unit


def test_json_logs_carry_context_and_mask_pii(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json_logs=True)
    structlog.contextvars.bind_contextvars(call_id="call-123", request_id="req-9")
    try:
        structlog.get_logger("voxdesk.test").info("turn_stored", pii_text="my card is 4111 1111 1111 1111", seq=3)
    finally:
        structlog.contextvars.clear_contextvars()
        flush_logs()
        logging.getLogger().handlers.clear()
    line = capsys.readouterr().err.strip().splitlines()[-1]
    record = json.loads(line)
    assert record["event"] == "turn_stored"
    assert record["call_id"] == "call-123"
    assert record["request_id"] == "req-9"
    assert record["pii_text"] == "<redacted>"
    assert "4111" not in line


def test_loguru_records_join_the_structured_stream(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json_logs=True)
    structlog.contextvars.bind_contextvars(call_id="call-456")
    try:
        # As pipecat logs: loguru, from a module of its own, inside a call's context.
        loguru_logger.bind(stage="tts").warning("TTS stage failed")
        loguru_logger.info("below the loguru threshold outside DEBUG")
        try:
            raise RuntimeError("synthetic")
        except RuntimeError:
            loguru_logger.exception("pipeline error")
    finally:
        structlog.contextvars.clear_contextvars()
        flush_logs()
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.strip().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["event"] for r in records] == ["TTS stage failed", "pipeline error"]
    warning, error = records
    assert warning["call_id"] == "call-456"
    assert warning["level"] == "warning"
    assert warning["logger"] == __name__
    assert warning["stage"] == "tts"
    assert error["level"] == "error"
    assert error["call_id"] == "call-456"
    assert "RuntimeError: synthetic" in error["exception"]


async def test_loop_lag_probe_sees_a_blocked_loop() -> None:
    probe = LoopLagProbe(interval=0.01)
    probe.start()
    await asyncio.sleep(0.05)
    time.sleep(0.2)  # deliberately hold the loop, as a GIL-holding decoder would
    await asyncio.sleep(0.05)
    await probe.stop()
    assert probe.samples >= 2
    assert probe.max_lag >= 0.15


def _deep(level: int, payload: str) -> None:
    if level == 0:
        raise OverflowError("date value out of range")
    _deep(level - 1, payload)


def test_an_unexpected_error_is_one_bounded_line_without_locals(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json_logs=True)
    secret_local = "caller-said-" + "x" * 50_000  # a local variable: never rendered
    try:
        try:
            _deep(200, secret_local)
        except OverflowError:
            structlog.get_logger("voxdesk.test").exception("unhandled_error", path="/api/calls")
    finally:
        flush_logs()
        logging.getLogger().handlers.clear()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["event"] == "unhandled_error"
    assert "OverflowError: date value out of range" in record["exception"]
    assert "caller-said" not in lines[0]
    assert len(record["exception"]) <= TRACEBACK_CHARS + 1


class _StalledStream:
    """A stderr whose writes wait until released (a full pipe, a slow terminal)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lines: list[str] = []

    def write(self, text: str) -> int:
        self.release.wait(timeout=30)
        self.lines.append(text)
        return len(text)

    def flush(self) -> None:
        return None


def test_logging_never_waits_on_the_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _StalledStream()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging(level="INFO", json_logs=True)
    try:
        log: Any = structlog.get_logger("voxdesk.test")
        for i in range(5):
            log.error("call_pipeline_failed", seq=i)  # returns at once although the stream is stalled
        assert not stream.lines
        stream.release.set()
        flush_logs()
        assert sum('"call_pipeline_failed"' in line for line in stream.lines) == 5
    finally:
        stream.release.set()
        flush_logs()
        logging.getLogger().handlers.clear()


def test_lines_follow_stderr_when_it_is_swapped_and_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stream swapped out and closed after configuration (a test capture, a redirect) loses no later line."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    configure_logging(level="INFO", json_logs=True)
    try:
        monkeypatch.setattr("sys.stderr", second)
        first.close()
        structlog.get_logger("voxdesk.test").info("after_swap", seq=1)
        flush_logs()
        written = second.getvalue()
        assert '"after_swap"' in written and "Logging error" not in written, written
    finally:
        flush_logs()
        logging.getLogger().handlers.clear()
