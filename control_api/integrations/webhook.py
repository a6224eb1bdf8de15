"""Webhooks signed per the Standard Webhooks specification (the ``standardwebhooks`` package signs).

Each delivery is a JSON ``{"type", "timestamp", "data"}`` POSTed with ``webhook-id`` (the same on every
retry of one delivery, so receivers can de-duplicate), ``webhook-timestamp`` and ``webhook-signature``.
Config: ``url``, optional ``events`` (empty: every event). Secret: ``signing_secret`` (``whsec_`` + base64).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from standardwebhooks.webhooks import Webhook

from control_api.integrations import events as ev
from control_api.integrations.base import Job, Receipt
from control_api.integrations.errors import ConfigError, from_status
from control_api.integrations.http import GuardedHttp, check_url, redact_url

EVENTS = ev.WEBHOOK_EVENTS
# A webhook may also pick the operator alerts (a handoff waiting, an integration failing) by name.
PICKABLE = ev.SUBSCRIBABLE


def _signer(secret: str) -> Webhook:
    try:
        return Webhook(secret)
    except Exception:  # noqa: BLE001 - the library raises bare errors for a malformed secret
        raise ConfigError("signing_secret must be a Standard Webhooks secret: whsec_ followed by base64.") from None


class WebhookConnector:
    """The ``webhook`` kind."""

    kind: str = "webhook"
    secret_fields: tuple[str, ...] = ("signing_secret",)

    def check(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        """Validate ``url``, ``events`` and the signing secret."""
        url = config.get("url")
        if not isinstance(url, str):
            raise ConfigError("config.url is required (the receiver's https:// URL).")
        check_url(url)
        events = config.get("events", [])
        if not isinstance(events, list) or any(e not in PICKABLE for e in events):
            raise ConfigError(f"config.events must be a list of: {', '.join(PICKABLE)} (empty: {', '.join(EVENTS)}).")
        unknown = set(config) - {"url", "events"}
        if unknown:
            raise ConfigError(f"Unknown webhook config fields: {', '.join(sorted(unknown))}.")
        if "signing_secret" not in secrets:
            raise ConfigError("secrets.signing_secret is required.")
        _signer(secrets["signing_secret"])
        return {"url": url.strip(), "events": list(events)}

    def destination(self, config: dict[str, Any]) -> str:
        """The receiver's URL."""
        return str(config["url"])

    def subscribes(self, config: dict[str, Any], event: str) -> bool:
        """The events this integration asked for (every ``EVENTS`` one when ``events`` is empty)."""
        events = config.get("events") or EVENTS
        return event in events

    async def _post(self, http: GuardedHttp, job: Job) -> Receipt:
        url = str(job.config["url"])
        body = json.dumps(
            {"type": job.event, "timestamp": job.created_at.isoformat(), "data": job.payload},
            separators=(",", ":"),
        ).encode()
        now = datetime.now(UTC)
        message_id = "msg_" + job.delivery_id.replace("-", "")
        signature = _signer(job.secrets.get("signing_secret", "")).sign(message_id, now, body)
        headers = {
            "content-type": "application/json",
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        answer = await http.request("POST", url, headers=headers, content=body)
        summary = {"method": "POST", "url": redact_url(url), "event": job.event, "webhook_id": message_id}
        if not 200 <= answer.status < 300:
            raise from_status(answer.status, what="The webhook receiver", retry_after=answer.headers.get("retry-after"))
        return Receipt(status=answer.status, latency_ms=answer.latency_ms, summary=summary)

    async def deliver(self, http: GuardedHttp, job: Job) -> Receipt:
        """POST the signed event; any 2xx settles it."""
        return await self._post(http, job)

    async def test(self, http: GuardedHttp, config: dict[str, Any], secrets: dict[str, str]) -> Receipt:
        """POST a signed ``integration.test`` event."""
        now = datetime.now(UTC)
        job = Job(
            delivery_id="test-" + now.strftime("%Y%m%d%H%M%S%f"),
            event="integration.test",
            payload={"message": "Voxdesk test delivery"},
            config=config,
            secrets=secrets,
            prior_attempts=0,
            ambiguous_before=False,
            created_at=now,
        )
        return await self._post(http, job)
