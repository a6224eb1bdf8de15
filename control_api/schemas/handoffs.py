"""Request and response shapes of the handoff queue, the desk and agents' presence (issue 19)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

HandoffStatus = Literal[
    "requested",
    "queued",
    "accepted",
    "completed",
    "timed_out",
    "declined",
    "no_agents",
    "abandoned",
    "failed",
    "transferring",
    "transferred",
]

# A cold transfer's target: a phone number (E.164, or digits with an optional leading +), a SIP/SIPS URI
# (RFC 3261: user@host with an optional port and parameters, or a bare host) or a tel: URI (RFC 3966). Nothing a
# caller controls ends up here: the supervisor sets it per persona.
_NUMBER = r"\+?[0-9]{2,20}"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = rf"(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])"
_SIP_USER = r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]{1,64}"
TRANSFER_TARGET = re.compile(
    rf"^(?:{_NUMBER}|sips?:(?:{_SIP_USER}@)?{_HOST}(?::[0-9]{{1,5}})?(?:;[A-Za-z0-9\-_.=]{{1,64}})*|tel:{_NUMBER})$"
)
PresenceStatus = Literal["available", "busy", "away"]


class HandoffPolicyModel(BaseModel):
    """One persona's handoff triggers: each can be switched off; thresholds per trigger.

    Attributes:
        enabled: Handoffs at all (off: the AI keeps every call; ``transfer_to_human`` is refused).
        phrases: Person-words: a turn that asks to reach one ("talk to a human", "get me a manager", "agent
            please") hands over; one naming a third party ("can someone else pay my bill") does not
            (``agent.calls.person_request``). A phrase that is a request by itself ("speak to someone")
            matches wherever its words appear.
        phrase_trigger: Whether the phrases trigger a handoff (the brain's tool still does).
        tool_trigger: Whether the brain's ``transfer_to_human`` tool hands over.
        not_found_trigger / not_found_threshold: Hand over after this many "not found" answers in one call.
        sentiment_trigger / sentiment_threshold: Hand over when a caller turn's VADER compound score is at or
            below this (strongly negative) and the turn asks nothing: a question is answered (a person is
            offered when nothing is found), whatever its subject's words score.
        dtmf_trigger: Whether a keypad 0 hands over (phone calls).
        priority: Queue priority of this persona's handoffs (higher first).
        queue: The queue (skill) they go to.
        cold_transfer_to: When set, a handoff is a cold transfer to this phone number or SIP/tel URI instead of
            the warm queue: SIP calls are REFERred there; a caller whose line cannot be transferred (browser,
            WebSocket) is told so and goes the warm way.

    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    phrases: list[str] = Field(
        default_factory=lambda: [
            "human",
            "person",
            "real person",
            "someone",
            "somebody",
            "representative",
            "operator",
            "agent",
            "manager",
        ],
        max_length=50,
    )
    phrase_trigger: bool = True
    tool_trigger: bool = True
    not_found_trigger: bool = True
    not_found_threshold: int = Field(default=3, ge=1, le=20)
    sentiment_trigger: bool = True
    sentiment_threshold: float = Field(default=-0.6, ge=-1.0, le=0.0)
    dtmf_trigger: bool = True
    priority: int = Field(default=0, ge=-100, le=100)
    queue: str = Field(default="default", min_length=1, max_length=50)
    cold_transfer_to: str | None = Field(
        default=None,
        max_length=200,
        description="Phone number (+15551234567) or SIP/tel URI (sip:desk@pbx.example.com) of a cold transfer.",
    )

    @field_validator("cold_transfer_to")
    @classmethod
    def _transfer_target(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            return None
        if not TRANSFER_TARGET.match(value):
            raise ValueError("must be a phone number (+15551234567) or a sip:, sips: or tel: URI")
        return value


class HandoffPublic(BaseModel):
    """A handoff in the queue (no briefing)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    call_id: str
    status: str
    reason: str | None
    source: str | None
    queue: str
    priority: int
    agent_user_id: str | None
    offered_to: list[str]
    declined_by: list[str]
    requested_at: datetime
    accepted_at: datetime | None
    ended_at: datetime | None
    wait_s: float = Field(default=0.0, description="Seconds queued (until accepted or ended, or until now).")


class HandoffDetail(HandoffPublic):
    """A handoff with its briefing, timeline and wrap-up."""

    briefing: dict[str, Any]
    timeline: list[dict[str, Any]]
    notes: str | None
    disposition: str | None


class HandoffsPublic(BaseModel):
    """A page of the handoff queue."""

    items: list[HandoffPublic]


class HandoffComplete(BaseModel):
    """The human agent's wrap-up."""

    model_config = ConfigDict(extra="forbid")

    notes: str = Field(default="", max_length=20_000)
    disposition: str = Field(min_length=1, max_length=100)


class DeskOffer(BaseModel):
    """The desk's SDP offer: the human agent's browser joins the call's audio."""

    model_config = ConfigDict(extra="forbid")

    sdp: str = Field(min_length=10, max_length=100_000)
    type: Literal["offer"] = "offer"


class DeskAnswer(BaseModel):
    """The server's SDP answer for the desk's audio."""

    sdp: str
    type: Literal["answer"] = "answer"


class PresenceIn(BaseModel):
    """An agent's new presence."""

    model_config = ConfigDict(extra="forbid")

    status: PresenceStatus


class PresencePublic(BaseModel):
    """One agent's presence."""

    user_id: str
    email: str | None = None
    full_name: str | None = None
    status: str
    updated_at: datetime


class PresenceList(BaseModel):
    """Every agent's presence (supervisors)."""

    items: list[PresencePublic]


CallbackStatus = Literal["open", "claimed", "done"]
CallbackOutcome = Literal["reached", "no_answer", "voicemail", "wrong_number", "not_needed"]


class CallbackPublic(BaseModel):
    """A callback request left by a handoff nobody took, as the callback queue shows it."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    call_id: str | None
    handoff_id: str | None
    phone: str | None = Field(description="The caller's number to call back (none when the line gave none).")
    reason: str = Field(description="Why nobody took the handoff: timed_out, declined or no_agents.")
    status: str = Field(description="open (claimed or not) or done.")
    ticket_delivery_id: str | None
    created_at: datetime
    summary: str | None = Field(default=None, description="The briefing's summary of the call.")
    handoff_reason: str | None = Field(default=None, description="Why the call was handed over.")
    claimed_by: str | None = None
    claimed_by_name: str | None = Field(default=None, description="Name (or e-mail) of who claimed it.")
    claimed_at: datetime | None = None
    completed_by: str | None = None
    completed_by_name: str | None = Field(default=None, description="Name (or e-mail) of who completed it.")
    completed_at: datetime | None = None
    outcome: CallbackOutcome | None = Field(default=None, description="How the call back went (done ones).")
    note: str | None = None
    age_s: float = Field(default=0.0, description="Seconds since the request (until completed, for done ones).")


class CallbacksPublic(BaseModel):
    """A page of the callback queue."""

    items: list[CallbackPublic]
    count: int = Field(default=0, description="Callbacks matching the filter that you may see, over all pages.")


class CallbackComplete(BaseModel):
    """How a callback went: the outcome and an optional note."""

    model_config = ConfigDict(extra="forbid")

    outcome: CallbackOutcome = Field(description="How the call back went.")
    note: str | None = Field(default=None, max_length=2000, description="What was said or done (optional).")


class CallbackAssignee(BaseModel):
    """Someone a supervisor may hand a callback to: an active account that takes handoffs."""

    user_id: str
    email: str
    full_name: str | None = None
    role: str
    presence: str | None = Field(
        description="Their presence on the desk (available, busy or away); null when they never set one."
    )


class CallbackAssignees(BaseModel):
    """Everyone a callback may be handed to, by name."""

    items: list[CallbackAssignee]


class CallbackReassign(BaseModel):
    """Who works a callback now (a supervisor's choice); ``null`` puts it back in the open queue."""

    model_config = ConfigDict(extra="forbid")

    user_id: str | None = Field(max_length=36, description="An active account that takes handoffs, or null.")
