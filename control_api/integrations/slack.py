"""Slack notifications through an incoming webhook (Slack's documented contract).

``POST`` a JSON body ``{"text": ..., "blocks": [...]}`` to the webhook URL; Slack answers ``200 ok``. Errors
come back as a status and a short code in the body: ``400 invalid_payload``, ``403 invalid_token`` /
``action_prohibited``, ``404 no_service`` / ``channel_not_found``, ``410 channel_is_archived`` (permanent:
the webhook must be fixed), ``429`` with ``Retry-After`` (retried after the wait), ``5xx`` (retried).
The webhook URL itself is the credential (Slack: "keep it secret"), so it is a secret here; the config keeps
only its origin, which the SSRF rule checks when the integration is saved.
Config: ``events`` (default: the alert events), ``console_url``. Secret: ``webhook_url``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from control_api.integrations.base import Job, Receipt
from control_api.integrations.errors import ConfigError, DeliveryError, from_status
from control_api.integrations.http import GuardedHttp, check_url
from control_api.integrations.notify import Notice, check_console_url, check_events, notice

WHAT = "Slack"
# Slack's limit on a section block's text.
_SECTION_CHARS = 3000
_CODE = re.compile(r"^[a-z_]{2,60}$")


def message(note: Notice) -> dict[str, Any]:
    """The incoming-webhook body: ``text`` (notifications' fallback) and Block Kit ``blocks``."""
    fields = "\n".join(f"*{label}:* {value}" for label, value in note.lines)
    blocks: list[dict[str, Any]] = [{"type": "header", "text": {"type": "plain_text", "text": note.title[:150]}}]
    if fields:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": fields[:_SECTION_CHARS]}})
    if note.link:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"<{note.link}|Open in Voxdesk>"}})
    return {"text": note.plain()[:_SECTION_CHARS], "blocks": blocks}


class SlackConnector:
    """The ``slack`` kind."""

    kind: str = "slack"
    secret_fields: tuple[str, ...] = ("webhook_url",)

    def check(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        """Validate ``events``, ``console_url`` and the webhook URL (its origin is kept in the config)."""
        unknown = set(config) - {"events", "console_url", "origin"}
        if unknown:
            raise ConfigError(f"Unknown Slack config fields: {', '.join(sorted(unknown))}.")
        url = secrets.get("webhook_url")
        if not url:
            raise ConfigError("secrets.webhook_url is required (Slack app → Incoming Webhooks → the URL).")
        scheme, _, _ = check_url(url)
        parts = urlsplit(url.strip())
        out: dict[str, Any] = {
            "events": check_events(config, "a Slack integration"),
            "origin": f"{scheme}://{parts.netloc}",
        }
        console = check_console_url(config)
        if console:
            out["console_url"] = console
        return out

    def destination(self, config: dict[str, Any]) -> str:
        """The webhook's origin (the full URL is a secret)."""
        return str(config["origin"])

    def subscribes(self, config: dict[str, Any], event: str) -> bool:
        """The events this integration picked."""
        return event in (config.get("events") or ())

    async def _post(self, http: GuardedHttp, url: str, body: dict[str, Any], event: str) -> Receipt:
        answer = await http.request(
            "POST", url, headers={"Content-Type": "application/json"}, content=json.dumps(body).encode()
        )
        summary = {"method": "POST", "url": urlsplit(url).netloc + "/…", "event": event}
        if answer.status == 200:
            return Receipt(status=200, latency_ms=answer.latency_ms, summary=summary)
        error = from_status(answer.status, what=WHAT, retry_after=answer.headers.get("retry-after"))
        code = answer.body.decode("utf-8", "replace").strip()
        if _CODE.match(code):  # Slack's error codes are short snake_case words: safe to show
            error = DeliveryError(
                f"{error.message} ({code})",
                retryable=error.retryable,
                status=error.status,
                retry_after_secs=error.retry_after_secs,
            )
        raise error

    async def deliver(self, http: GuardedHttp, job: Job) -> Receipt:
        """Post the notice of the job's event."""
        note = notice(job.event, job.payload, job.config.get("console_url"))
        return await self._post(http, job.secrets.get("webhook_url", ""), message(note), job.event)

    async def test(self, http: GuardedHttp, config: dict[str, Any], secrets: dict[str, str]) -> Receipt:
        """Post a test message (Slack has no way to check a webhook without posting)."""
        note = notice("integration.test", {"message": f"Sent at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC."}, None)
        return await self._post(http, secrets.get("webhook_url", ""), message(note), "integration.test")
