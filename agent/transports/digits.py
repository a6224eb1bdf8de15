"""A caller's DTMF digits, from any phone transport (SIP RFC 4733 / INFO, Twilio and Telnyx ``dtmf`` events).

One rule for every phone line: each digit is stored with the call as a ``dtmf`` event (an account number may be
typed: digits never reach a log line); ``0`` asks for a person through the call's live handoff, and where no
handoff takes the call and a transfer target is configured, the transport cold-transfers it (SIP REFER, the
provider's REST transfer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog

from agent.calls.media import CallControls
from agent.calls.session import CallSession
from agent.calls.sink import Sessions
from control_api.services import calls as call_service

log = structlog.get_logger(__name__)
HANDOFF_DIGIT = "0"
DIGITS = frozenset("0123456789*#ABCD")
# Cold-transfers the call to a number or URI; False when it could not.
Transfer = Callable[[str], Awaitable[bool]]


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
    async with sessions() as session:
        await call_service.add_event(session, call.call_id, kind="dtmf", data={"digit": digit})
    if digit != HANDOFF_DIGIT:
        return
    handoff_id = await controls.request_handoff("caller pressed 0", source="dtmf")
    log.info("dtmf_handoff", call_id=call.call_id, handoff=handoff_id is not None)
    if handoff_id is None and transfer is not None and transfer_target:
        transferred = await transfer(transfer_target)
        log.info("dtmf_transfer", call_id=call.call_id, sent=transferred)
