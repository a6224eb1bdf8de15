"""Structured logs carry context and never caller data; the loop-lag probe measures a blocked loop."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest
import structlog
from loguru import logger as loguru_logger

from control_api.logging_setup import configure_logging
from control_api.looplag import LoopLagProbe

pytestmark = pytest.mark.unit


def test_json_logs_carry_context_and_mask_pii(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="INFO", json_logs=True)
    structlog.contextvars.bind_contextvars(call_id="call-123", request_id="req-9")
    try:
        structlog.get_logger("voxdesk.test").info("turn_stored", pii_text="my card is 4111 1111 1111 1111", seq=3)
    finally:
        structlog.contextvars.clear_contextvars()
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
