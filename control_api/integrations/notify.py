"""What Slack and e-mail notifications say about an event: a title, a few lines, and a link to the call.

One wording for both kinds. Payloads are the documented event payloads (docs/integrations.md); only their
non-personal fields are written out (ids, reasons, waits, counts), never a transcript.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from control_api.integrations import events as ev
from control_api.integrations.errors import ConfigError

_TITLES = {
    ev.HANDOFF_WAITING: "A caller is waiting for a human agent",
    ev.INTEGRATION_FAILING: "An integration is failing",
    ev.HANDOFF_REQUESTED: "A handoff was requested",
    ev.HANDOFF_ACCEPTED: "A handoff was accepted",
    ev.TICKET_CREATED: "A ticket was created",
    ev.CALL_ANALYSED: "A call was analysed",
    ev.CALL_STARTED: "A call started",
    ev.CALL_ENDED: "A call ended",
    "integration.test": "Voxdesk test notification",
}
# Payload fields worth a line, in this order, with their labels.
_FIELDS = (
    ("integration_name", "Integration"),
    ("reason", "Reason"),
    ("error", "Error"),
    ("waited_secs", "Waiting (s)"),
    ("threshold_secs", "Threshold (s)"),
    ("queue", "Queue"),
    ("agent_name", "Agent"),
    ("ticket_id", "Ticket"),
    ("subject", "Subject"),
    ("summary", "Summary"),
    ("outcome", "Outcome"),
    ("duration_ms", "Duration (ms)"),
    ("message", "Message"),
)
_LINE_CHARS = 500


@dataclass(frozen=True, slots=True)
class Notice:
    """A notification's content."""

    title: str
    lines: tuple[tuple[str, str], ...]
    link: str | None

    def plain(self) -> str:
        """Plain text (e-mail body, Slack's fallback text)."""
        body = [self.title, ""] + [f"{label}: {value}" for label, value in self.lines]
        if self.link:
            body += ["", f"Open in Voxdesk: {self.link}"]
        return "\n".join(body)


def notice(event: str, payload: dict[str, Any], console_url: str | None) -> Notice:
    """The notice of ``event`` with ``payload``; ``console_url`` (Voxdesk's base URL) adds a link to the call."""
    lines: list[tuple[str, str]] = []
    for field, label in _FIELDS:
        value = payload.get(field)
        if value is None or value == "":
            continue
        text = " ".join(str(value).split())
        lines.append((label, text if len(text) <= _LINE_CHARS else text[: _LINE_CHARS - 1] + "…"))
    link = None
    if console_url and payload.get("call_id"):
        link = f"{console_url}/console#/calls/{payload['call_id']}"
    elif console_url and event == ev.INTEGRATION_FAILING:
        link = f"{console_url}/console#/integrations"
    return Notice(title=_TITLES.get(event, event), lines=tuple(lines), link=link)


def check_events(config: dict[str, Any], what: str) -> list[str]:
    """``config.events`` validated: names from ``events.SUBSCRIBABLE`` (absent: the alert events)."""
    chosen = config.get("events", list(ev.ALERT_EVENTS))
    if not isinstance(chosen, list) or not chosen or any(e not in ev.SUBSCRIBABLE for e in chosen):
        raise ConfigError(f"config.events of {what} must be a non-empty list of: {', '.join(ev.SUBSCRIBABLE)}.")
    return [str(e) for e in dict.fromkeys(chosen)]


# Kinds whose messages link to the call in the console.
LINKING_KINDS = ("freshdesk", "slack", "email")


def with_console_url(kind: str, config: dict[str, Any], console_url: str | None) -> dict[str, Any]:
    """``config`` as a delivery uses it: Voxdesk's current public URL unless the integration sets its own.

    Read at each send (not stored when the integration is saved), so a changed ``server.public_url`` reaches the
    next delivery; ``config.console_url`` is only an operator's explicit override.
    """
    if kind in LINKING_KINDS and not config.get("console_url") and console_url:
        return {**config, "console_url": console_url.rstrip("/")}
    return config


def check_console_url(config: dict[str, Any]) -> str | None:
    """``config.console_url`` validated (Voxdesk's public http(s) base URL), or None."""
    console = config.get("console_url")
    if console is None:
        return None
    if not isinstance(console, str) or not console.startswith(("http://", "https://")):
        raise ConfigError("config.console_url must be Voxdesk's public http(s) URL.")
    return console.strip().rstrip("/")
