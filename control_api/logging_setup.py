"""Structured logging with ``request_id``/``call_id`` context (structlog over the standard library).

One stream: structlog, the standard library and loguru (pipecat's logger) all come out through one
handler and one renderer, each line with the ``call_id``/``request_id`` bound in structlog's contextvars.

Caller data (numbers, transcripts, tool arguments) never goes into the message text; where it must be
logged it goes in a field named ``pii_*``, which the renderer masks unless DEBUG is on.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import structlog
from loguru import logger as loguru_logger

if TYPE_CHECKING:
    from loguru import Message

# loguru level names the standard library lacks, mapped onto its nearest level.
_LOGURU_LEVELS = {"TRACE": logging.DEBUG, "SUCCESS": logging.INFO}
# The LogRecord attribute carrying the values a loguru call bound (``logger.bind(...)``).
_LOGURU_EXTRA = "loguru_extra"


def _mask_pii(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key in list(event_dict):
        if key.startswith("pii_"):
            event_dict[key] = "<redacted>"
    return event_dict


def _merge_loguru_extra(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    record = event_dict.get("_record")
    extra = getattr(record, _LOGURU_EXTRA, None)
    if extra:
        for key, value in extra.items():
            event_dict.setdefault(key, value)
    return event_dict


def _forward_loguru(message: Message) -> None:
    """A loguru sink: hand each record to the standard library logger of the same name.

    It runs in the thread and context of the logging call, so structlog's contextvars (``call_id``)
    are the caller's when the formatter merges them.
    """
    record = message.record
    level = _LOGURU_LEVELS.get(record["level"].name, record["level"].no)
    target = logging.getLogger(record["name"] or "loguru")
    if not target.isEnabledFor(level):
        return
    exception = record["exception"]
    exc_info = None
    if exception is not None and exception.type is not None and exception.value is not None:
        exc_info = (exception.type, exception.value, exception.traceback)
    target.handle(
        target.makeRecord(
            target.name,
            level,
            record["file"].path,
            record["line"],
            record["message"],
            (),
            exc_info,
            func=record["function"],
            extra={_LOGURU_EXTRA: dict(record["extra"])},
        )
    )


def _route_loguru(level: str) -> None:
    # pipecat logs transcripts and per-frame detail at DEBUG: below DEBUG it is kept to WARNING and up,
    # filtered inside loguru so that a dropped call costs no record.
    loguru_logger.remove()
    loguru_level = "DEBUG" if level == "DEBUG" else max(logging.WARNING, logging.getLevelName(level))
    loguru_logger.add(_forward_loguru, level=loguru_level, format="{message}", backtrace=False, diagnose=False)


def configure_logging(*, level: str = "INFO", json_logs: bool = False) -> None:
    """Configure structlog, the standard library and loguru to emit one structured line per event."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _merge_loguru_extra,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if level != "DEBUG":
        shared.append(_mask_pii)
    renderers: list[Any] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if json_logs
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    structlog.configure(
        # filter_by_level first: a disabled debug call costs one level check, not the whole chain.
        processors=[structlog.stdlib.filter_by_level, *shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aioice", "aiortc", "httpx", "multipart"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    _route_loguru(level)
