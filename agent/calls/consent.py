"""The recording-consent rule of one call.

The greeting ends with the recording notice, so the call's first agent turn is the notice. Recording is agreed
only when recording is on and that turn was heard whole (not interrupted); either way the caller's consent record
is stored once, with the notice's text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ConsentDecision:
    """What to store as the caller's consent: the notice they heard and whether recording was agreed."""

    notice_text: str
    recording: bool


class RecordingConsent:
    """Decides, once per call, what the caller agreed to about recording.

    Args:
        notice: The notice the greeting speaks (``None``: no notice, nothing is decided).
        record_calls: Whether this deployment records calls at all.

    """

    def __init__(self, *, notice: str | None, record_calls: bool) -> None:
        self.notice = notice
        self.record_calls = record_calls
        self._decided = False

    def on_agent_turn(self, *, interrupted: bool) -> ConsentDecision | None:
        """The decision on the call's first agent turn (the greeting); ``None`` on every later one."""
        if self._decided or self.notice is None:
            return None
        self._decided = True
        return ConsentDecision(notice_text=self.notice, recording=self.record_calls and not interrupted)
