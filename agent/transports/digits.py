"""A caller's DTMF digits, from any phone transport (SIP RFC 4733 / INFO, Twilio and Telnyx ``dtmf`` events).

One rule for every phone line: each digit is stored with the call as a ``dtmf`` event (an account number may be
typed: digits never reach a log line); ``0`` asks for a person through the call's live handoff, and where no
handoff takes the call and a transfer target is configured, the transport cold-transfers it (SIP REFER, the
provider's REST transfer).

A tool may collect digits (an account number keyed in): while :func:`collect_digits` holds a collection open for
the call, digits are gathered until the terminator (``#``), the maximum length or a timeout (for the first digit,
then between digits), and handed to the tool; ``0`` is then a digit, not a request for a person, and the single
digits are not stored (one ``digits_collected`` event records how many and how the collection ended, never the
digits). A digit keyed once the collection has ended, even before its task has woken, goes the normal way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import structlog
from prometheus_client import Counter

from agent.calls.media import CallControls
from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from control_api.services import calls as call_service
from pipelines.contracts import CollectedDigits

log = structlog.get_logger(__name__)
HANDOFF_DIGIT = "0"
DIGITS = frozenset("0123456789*#ABCD")
# The channels of phone lines (SIP, LiveKit SIP callers, Twilio/Telnyx media streams): only they have a keypad.
PHONE_CHANNELS = frozenset({"sip", "telephony"})
# Cold-transfers the call to a number or URI; False when it could not.
Transfer = Callable[[str], Awaitable[bool]]
DIGIT_COLLECTIONS = Counter(
    "voxdesk_digit_collections_total",
    "Digit collections on phone lines, by outcome (complete, timeout, cancelled).",
    ["outcome"],
)


@dataclass(slots=True)
class DigitCollection:
    """An open collection for one call: fed each digit the caller keys while it is open."""

    max_digits: int
    terminator: str
    digits: list[str] = field(default_factory=list)
    ended: str | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def feed(self, digit: str) -> None:
        """Take one keyed digit (ignored once the collection has ended)."""
        if self.ended is not None:
            return
        if digit == self.terminator:
            self.ended = "terminator"
        else:
            self.digits.append(digit)
            if len(self.digits) >= self.max_digits:
                self.ended = "max_digits"
        self.changed.set()


# The open collection of each call, by call id (at most one per call; only this module touches it).
_OPEN: dict[str, DigitCollection] = {}


def collecting(call_id: str) -> bool:
    """Whether a collection is open for the call (its digits go to a tool, ``0`` is a digit)."""
    collection = _OPEN.get(call_id)
    return collection is not None and collection.ended is None


async def collect_digits(
    sessions: Sessions,
    call_id: str,
    *,
    max_digits: int = 16,
    terminator: str = "#",
    first_timeout_s: float = 20.0,
    timeout_s: float = 5.0,
) -> CollectedDigits:
    """Collect the digits the caller keys on the call (see the module docstring).

    Args:
        sessions: The database sessions (the ``digits_collected`` event is stored with the call).
        call_id: The call whose digits are collected.
        max_digits: The collection ends once this many digits are keyed.
        terminator: The key that ends the collection (not part of the digits).
        first_timeout_s: How long to wait for the first digit.
        timeout_s: How long to wait for each further digit.

    Raises:
        ValueError: A collection is already open for the call, or the limits are out of range.

    """
    if collecting(call_id):
        raise ValueError("a digit collection is already open for this call")
    if not 1 <= max_digits <= 64 or terminator not in DIGITS or first_timeout_s <= 0 or timeout_s <= 0:
        raise ValueError("digit collection limits out of range")
    collection = DigitCollection(max_digits=max_digits, terminator=terminator)
    _OPEN[call_id] = collection
    log.info("digits_collecting", call_id=call_id, max_digits=max_digits)
    try:
        wait = first_timeout_s
        while collection.ended is None:
            collection.changed.clear()
            try:
                await asyncio.wait_for(collection.changed.wait(), wait)
            except TimeoutError:
                collection.ended = "timeout"
            wait = timeout_s
    except asyncio.CancelledError:
        collection.ended = "cancelled"  # the caller answered by voice, or the call ended
        DIGIT_COLLECTIONS.labels("cancelled").inc()
        log.info("digits_collected", call_id=call_id, count=len(collection.digits), ended="cancelled")
        raise
    finally:
        if _OPEN.get(call_id) is collection:
            del _OPEN[call_id]
    result = CollectedDigits("".join(collection.digits), collection.ended)
    DIGIT_COLLECTIONS.labels("complete" if result.complete else "timeout").inc()
    log.info("digits_collected", call_id=call_id, count=len(result.digits), ended=result.ended)
    async with sessions() as session:
        await call_service.add_event(
            session, call_id, kind="digits_collected", data={"count": len(result.digits), "ended": result.ended}
        )
    return result


class PhoneKeypad:
    """``pipelines.contracts.DigitCollector`` of one phone call: :func:`collect_digits` with its defaults.

    Args:
        sessions: Database session factory.
        call_id: The call whose keypad it is.

    """

    def __init__(self, *, sessions: Sessions, call_id: str) -> None:
        self._sessions = sessions
        self._call_id = call_id

    async def __call__(self, *, max_digits: int) -> CollectedDigits:
        """Collect up to ``max_digits`` digits, ended by ``#``."""
        return await collect_digits(self._sessions, self._call_id, max_digits=max_digits)


async def caller_digit(
    sessions: Sessions,
    call: CallSession,
    controls: CallControls,
    digit: str,
    *,
    transfer: Transfer | None = None,
    transfer_target: str | None = None,
) -> None:
    """Handle one digit the caller pressed (see the module docstring)."""
    if digit not in DIGITS or call.ended:
        return
    collection = _OPEN.get(call.call_id)
    if collection is not None and collection.ended is None:
        collection.feed(digit)  # a tool's digit: not stored one by one, and 0 is a digit here
        return
    async with sessions() as session:
        await call_service.add_event(session, call.call_id, kind="dtmf", data={"digit": digit})
    if digit != HANDOFF_DIGIT:
        return
    handoff_id = await controls.request_handoff("caller pressed 0", source="dtmf")
    log.info("dtmf_handoff", call_id=call.call_id, handoff=handoff_id is not None)
    if handoff_id is None and transfer is not None and transfer_target:
        transferred = await transfer(transfer_target)
        log.info("dtmf_transfer", call_id=call.call_id, sent=transferred)
