"""Shapes shared by list endpoints."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator

from control_api.problems import ProblemError


def encode_cursor(*values: Any) -> str:
    """An opaque cursor for the position after the row with these sort keys."""
    return base64.urlsafe_b64encode(json.dumps(list(values), default=str).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *, size: int) -> list[Any]:
    """The sort keys inside ``cursor``; 400 problem JSON when it was not made by ``encode_cursor``."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ProblemError(400, "The cursor is not valid.", type_="invalid-cursor") from None
    if not isinstance(values, list) or len(values) != size or not all(isinstance(v, str | int) for v in values):
        raise ProblemError(400, "The cursor is not valid.", type_="invalid-cursor")
    return values


def _as_utc(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns; every stored time is UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


UTCDateTime = Annotated[datetime, AfterValidator(_as_utc)]

# The times a client may send: wide enough for any real query, narrow enough that no date arithmetic on them
# (a window of days before ``until``, a timezone shift) can leave Python's or the database's range.
EARLIEST_INPUT = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_INPUT = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)


def checked_input_time(value: datetime) -> datetime:
    """``value`` in UTC (naive: taken as UTC); ``ValueError`` when it lies outside the accepted range."""
    try:
        utc = value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)
    except OverflowError:
        raise ValueError("the time is out of range") from None
    if not EARLIEST_INPUT <= utc <= LATEST_INPUT:
        raise ValueError(f"the time must lie between {EARLIEST_INPUT.date()} and {LATEST_INPUT.date()}")
    return utc


InputDateTime = Annotated[datetime, AfterValidator(checked_input_time)]
"""A time a client sends (query or body): converted to UTC, 422 when out of the accepted range."""
