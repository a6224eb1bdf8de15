"""Retry a database write that failed only because another writer held the database.

SQLite allows one writer at a time; under many concurrent calls a write can wait out ``busy_timeout`` and fail
with "database is locked". PostgreSQL can abort a transaction as a serialisation failure or a deadlock victim.
In each case the transaction was rolled back as a whole, so running it again cannot store anything twice. A call
record, a transcript line or a call's end must survive such a moment, so their writes go through
:func:`retry_transient` (tenacity: jittered exponential waits, bounded in time). Any other error is raised at once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import OperationalError
from tenacity import AsyncRetrying, retry_if_exception, stop_after_delay, wait_exponential_jitter

from control_api.metrics import DB_WRITE_RETRIES

T = TypeVar("T")

# How long a write keeps trying: longer than any writer holds SQLite in practice, short enough that a database
# that is really gone surfaces as an error while the call is still going.
RETRY_FOR_S = 30.0

_SQLITE_BUSY = ("database is locked", "database is busy", "database table is locked")
_PG_ROLLED_BACK = ("40001", "40P01")  # serialization_failure, deadlock_detected


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a write conflict whose transaction was rolled back whole (safe to run again)."""
    if not isinstance(exc, OperationalError):
        return False
    text = str(exc.orig).lower()
    if any(marker in text for marker in _SQLITE_BUSY):
        return True
    return getattr(exc.orig, "sqlstate", None) in _PG_ROLLED_BACK


def _count(_state: object) -> None:
    DB_WRITE_RETRIES.inc()


async def retry_transient(write: Callable[[], Awaitable[T]], *, retry_for_s: float = RETRY_FOR_S) -> T:
    """Run ``write`` (a whole transaction), again after a transient write conflict, for up to ``retry_for_s``."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(is_transient),
        stop=stop_after_delay(retry_for_s),
        wait=wait_exponential_jitter(multiplier=0.05, max=2.0),
        before_sleep=_count,
        reraise=True,
    ):
        with attempt:
            return await write()
    raise AssertionError("unreachable: tenacity either returns or re-raises")  # pragma: no cover
