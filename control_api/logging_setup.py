"""Structured logging with ``request_id``/``call_id`` context (structlog over the standard library).

One stream: structlog, the standard library and loguru (pipecat's logger) all come out through one
handler and one renderer, each line with the ``call_id``/``request_id`` bound in structlog's contextvars.

Lines are written by a background thread (a ``QueueHandler`` in front of the one stream handler): the event
loop that carries every call's audio never waits on a write to stderr or on rendering a traceback. The
caller's context travels with each record. A traceback is rendered without local variables and bounded to
its last :data:`TRACEBACK_FRAMES` frames and :data:`TRACEBACK_CHARS` characters: one line per error.

Caller data (numbers, transcripts, tool arguments) never goes into the message text; where it must be
logged it goes in a field named ``pii_*``, which the renderer masks unless DEBUG is on.
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import sys
import traceback
from logging.handlers import QueueHandler, QueueListener
from typing import IO, TYPE_CHECKING, Any

import structlog
from loguru import logger as loguru_logger

if TYPE_CHECKING:
    from loguru import Message

# loguru level names the standard library lacks, mapped onto its nearest level.
_LOGURU_LEVELS = {"TRACE": logging.DEBUG, "SUCCESS": logging.INFO}
# The LogRecord attribute carrying the values a loguru call bound (``logger.bind(...)``).
_LOGURU_EXTRA = "loguru_extra"


TRACEBACK_FRAMES = 12
TRACEBACK_CHARS = 6000
# The record attribute carrying the caller's structlog context across to the writer thread.
_CONTEXT = "voxdesk_context"
_queue: queue.Queue[logging.LogRecord] = queue.Queue(-1)
_listener: QueueListener | None = None


def bounded_traceback(exc_info: Any) -> str:
    """The exception's last frames as text, no local variables, at most :data:`TRACEBACK_CHARS` characters."""
    kind, value, tb = exc_info
    text = "".join(traceback.format_exception(kind, value, tb, limit=-TRACEBACK_FRAMES))
    return text if len(text) <= TRACEBACK_CHARS else "…" + text[-TRACEBACK_CHARS:]


def _bounded_exc_info(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    exc_info = event_dict.pop("exc_info", None)
    if exc_info:
        if exc_info is True:
            exc_info = sys.exc_info()
        elif isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        if exc_info[0] is not None:
            event_dict["exception"] = bounded_traceback(exc_info)
    return event_dict


def _capture_exc_info(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    # ``log.exception`` asks for "the exception being handled": that is known only in the caller's thread.
    if event_dict.get("exc_info") is True:
        event_dict["exc_info"] = sys.exc_info()
    return event_dict


def _console_traceback(stream: IO[str], exc_info: Any) -> None:
    stream.write("\n" + bounded_traceback(exc_info))


def _merge_record_context(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    context = getattr(event_dict.get("_record"), _CONTEXT, None)
    if context:
        for key, value in context.items():
            event_dict.setdefault(key, value)
    return event_dict


class _ContextQueueHandler(QueueHandler):
    """Queues records for the writer thread as they are, with the caller's structlog context attached."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        """Keep the record whole (the formatter runs in the writer thread), plus the caller's context."""
        setattr(record, _CONTEXT, structlog.contextvars.get_contextvars())
        return record


_QUERY = re.compile(r"\?[^\s\"]*")


class _NoQueryStrings(logging.Filter):
    """Drops the query string from the request paths uvicorn logs (``"WebSocket /api/voice/stream?access_token=…"``).

    A WebSocket's token travels in its query; uvicorn writes the path with it on every connection, whatever
    ``access_log`` says. The app's own access lines carry only the route.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite path-shaped string arguments without their query; always keep the record."""
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _QUERY.sub("?<redacted>", arg) if isinstance(arg, str) and arg.startswith("/") else arg
                for arg in record.args
            )
        return True


def flush_logs() -> None:
    """Wait until every record queued so far has been written."""
    if _listener is not None:
        _queue.join()


def _stop_listener() -> None:
    global _listener
    if _listener is not None:
        _listener.stop()  # writes what is queued, then ends the thread
        _listener = None


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


class _StderrHandler(logging.StreamHandler[IO[str]]):
    """The one stream handler: writes to whatever ``sys.stderr`` is when a line is written.

    A handler bound to the stream at configuration time keeps writing to it after it is swapped and closed (a
    test runner's capture, a daemon's redirect), and every later line fails with "I/O operation on closed file".
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: IO[str]) -> None:
        """Ignored: the stream is always the current ``sys.stderr``."""


def configure_logging(*, level: str = "INFO", json_logs: bool = False) -> None:
    """Configure structlog, the standard library and loguru to emit one structured line per event."""
    global _listener
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _merge_record_context,
        _merge_loguru_extra,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if level != "DEBUG":
        shared.append(_mask_pii)
    renderers: list[Any] = (
        [_bounded_exc_info, structlog.processors.JSONRenderer()]
        if json_logs
        else [structlog.dev.ConsoleRenderer(colors=False, exception_formatter=_console_traceback)]
    )
    # filter_by_level first: a disabled debug call costs one level check, not the whole chain.
    chain: list[Any] = [
        structlog.stdlib.filter_by_level,
        *shared,
        _capture_exc_info,
        structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
    ]
    structlog.configure(
        processors=chain,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
    )
    writer = _StderrHandler()
    writer.setFormatter(formatter)
    _stop_listener()
    _listener = QueueListener(_queue, writer, respect_handler_level=False)
    _listener.start()
    root = logging.getLogger()
    root.handlers[:] = [_ContextQueueHandler(_queue)]
    root.setLevel(level)
    uvicorn_error = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _NoQueryStrings) for f in uvicorn_error.filters):
        uvicorn_error.addFilter(_NoQueryStrings())
    for noisy in ("aioice", "aiortc", "httpx", "multipart"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    _route_loguru(level)


atexit.register(_stop_listener)
