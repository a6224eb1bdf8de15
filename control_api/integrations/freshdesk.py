"""Freshdesk tickets through API v2: ``POST /api/v2/tickets`` with API-key basic auth (``key:X``).

The requester is looked up first (``GET /api/v2/contacts?email=`` or ``?phone=``) so a known caller's
ticket lands on their contact. Every ticket carries a tag derived from its outbox delivery; after an
attempt that may have reached Freshdesk (a timeout, a 5xx) the next attempt searches for that tag
(``GET /api/v2/search/tickets``) before creating anything, so one request never makes two tickets.
Config: ``domain`` (``acme`` → ``https://acme.freshdesk.com``) or ``base_url`` (a sandbox, a stand-in),
optional ``fallback_email`` (requester when the caller left no e-mail or phone), optional ``console_url``
(Voxdesk's public base URL: each ticket links to its call at ``{console_url}/console#/calls/{id}``; the API
fills it from ``server.public_url`` when the integration is saved without one). Secret: ``api_key``.

A ticket's description is the request, the call's extractive summary, the caller's details and the link.
"""

from __future__ import annotations

import base64
import html
import json
import re
from typing import Any

from control_api.integrations.base import Job, Receipt
from control_api.integrations.errors import ConfigError, DeliveryError, from_status
from control_api.integrations.http import GuardedHttp, HttpAnswer, check_url, redact_url

_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
# Freshdesk's ticket priorities (1 low .. 4 urgent) and statuses (2 open); source 3 is "Phone".
PRIORITIES = {"low": 1, "normal": 2, "medium": 2, "high": 3, "urgent": 4}
STATUS_OPEN = 2
SOURCE_PHONE = 3
WHAT = "Freshdesk"


def ticket_tag(delivery_id: str) -> str:
    """The tag that marks the ticket of one outbox delivery."""
    return "vx-" + delivery_id.replace("-", "")[:20]


def _html(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def ticket_description(payload: dict[str, Any], console_url: str | None) -> str:
    """The ticket's HTML description: the request, the call's summary, the caller and a link to the call."""
    parts = [_html(str(payload.get("description") or payload.get("subject") or "Support request from a call."))]
    if payload.get("summary"):
        parts.append("<b>Call summary:</b> " + _html(str(payload["summary"])))
    caller = [str(payload[f]) for f in ("name", "phone", "email") if payload.get(f)]
    if caller:
        parts.append("<b>Caller:</b> " + _html(" · ".join(caller)))
    link = payload.get("call_url")
    if not link and console_url and payload.get("call_id"):
        link = f"{console_url}/console#/calls/{payload['call_id']}"
    if link:
        parts.append(f'<b>Call:</b> <a href="{html.escape(str(link))}">transcript and recording</a>')
    return "<br><br>".join(parts)


class FreshdeskConnector:
    """The ``freshdesk`` kind."""

    kind: str = "freshdesk"
    secret_fields: tuple[str, ...] = ("api_key",)

    def check(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        """Validate ``domain``/``base_url``, ``fallback_email`` and the API key."""
        unknown = set(config) - {"domain", "base_url", "fallback_email", "console_url"}
        if unknown:
            raise ConfigError(f"Unknown Freshdesk config fields: {', '.join(sorted(unknown))}.")
        domain, base_url = config.get("domain"), config.get("base_url")
        out: dict[str, Any] = {}
        if base_url is not None:
            if not isinstance(base_url, str):
                raise ConfigError("config.base_url must be a URL.")
            check_url(base_url)
            out["base_url"] = base_url.strip().rstrip("/")
        if domain is not None:
            if not isinstance(domain, str) or not _DOMAIN.match(domain):
                raise ConfigError("config.domain is the Freshdesk subdomain, e.g. acme for acme.freshdesk.com.")
            out["domain"] = domain
        if not out:
            raise ConfigError("config.domain (or config.base_url) is required.")
        fallback = config.get("fallback_email")
        if fallback is not None:
            if not isinstance(fallback, str) or "@" not in fallback:
                raise ConfigError("config.fallback_email must be an e-mail address.")
            out["fallback_email"] = fallback
        console = config.get("console_url")
        if console is not None:
            if not isinstance(console, str) or not console.startswith(("http://", "https://")):
                raise ConfigError("config.console_url must be Voxdesk's public http(s) URL.")
            out["console_url"] = console.strip().rstrip("/")
        if not secrets.get("api_key"):
            raise ConfigError("secrets.api_key is required (Profile settings → Your API key).")
        return out

    def destination(self, config: dict[str, Any]) -> str:
        """``config.base_url``, or the account's ``https://{domain}.freshdesk.com``."""
        base = config.get("base_url")
        return str(base) if base else f"https://{config['domain']}.freshdesk.com"

    def subscribes(self, config: dict[str, Any], event: str) -> bool:
        """Ticket requests only."""
        return event == "ticket.create"

    @staticmethod
    def _headers(secrets: dict[str, str]) -> dict[str, str]:
        token = base64.b64encode(f"{secrets.get('api_key', '')}:X".encode()).decode()
        return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}

    async def _get(
        self, http: GuardedHttp, base: str, path: str, secrets: dict[str, str], params: dict[str, str]
    ) -> HttpAnswer:
        answer = await http.request("GET", base + path, headers=self._headers(secrets), params=params)
        if answer.status != 200:
            raise from_status(answer.status, what=WHAT, retry_after=answer.headers.get("retry-after"))
        return answer

    async def _existing_ticket(self, http: GuardedHttp, base: str, job: Job) -> tuple[str | None, float]:
        query = f"\"tag:'{ticket_tag(job.delivery_id)}'\""
        answer = await self._get(http, base, "/api/v2/search/tickets", job.secrets, {"query": query})
        found = answer.json()
        results = found.get("results") if isinstance(found, dict) else None
        if results:
            return str(results[0]["id"]), answer.latency_ms
        return None, answer.latency_ms

    async def _requester(self, http: GuardedHttp, base: str, job: Job) -> tuple[dict[str, Any], float]:
        payload, spent = job.payload, 0.0
        for field in ("email", "phone"):
            value = payload.get(field)
            if not value:
                continue
            answer = await self._get(http, base, "/api/v2/contacts", job.secrets, {field: str(value)})
            spent += answer.latency_ms
            contacts = answer.json()
            if isinstance(contacts, list) and contacts:
                return {"requester_id": int(contacts[0]["id"])}, spent
        if payload.get("email"):
            return {"email": str(payload["email"])}, spent
        if payload.get("phone"):
            # Freshdesk needs a name to create a contact from a phone number alone.
            return {"phone": str(payload["phone"]), "name": str(payload.get("name") or "Caller")}, spent
        fallback = job.config.get("fallback_email")
        if fallback:
            return {"email": str(fallback)}, spent
        raise ConfigError(
            "The caller left no e-mail or phone number and config.fallback_email is not set: "
            "Freshdesk needs a requester."
        )

    async def deliver(self, http: GuardedHttp, job: Job) -> Receipt:
        """Create the ticket (or find the one an earlier ambiguous attempt created)."""
        base = self.destination(job.config)
        spent = 0.0
        summary: dict[str, Any] = {"method": "POST", "url": redact_url(base + "/api/v2/tickets"), "event": job.event}
        if job.ambiguous_before:
            existing, spent = await self._existing_ticket(http, base, job)
            if existing is not None:
                summary["found_existing"] = True
                return Receipt(status=200, latency_ms=spent, external_id=existing, summary=summary)
        requester, looked_up = await self._requester(http, base, job)
        spent += looked_up
        payload = job.payload
        description = ticket_description(payload, job.config.get("console_url"))
        body = {
            "subject": str(payload.get("subject") or "Support request from a call")[:255],
            "description": description,
            "status": STATUS_OPEN,
            "priority": PRIORITIES.get(str(payload.get("priority", "normal")).lower(), 2),
            "source": SOURCE_PHONE,
            "tags": ["voxdesk", ticket_tag(job.delivery_id)],
            **requester,
        }
        summary["fields"] = sorted(body)
        answer = await http.request(
            "POST", base + "/api/v2/tickets", headers=self._headers(job.secrets), content=json.dumps(body).encode()
        )
        spent += answer.latency_ms
        if answer.status != 201:
            raise from_status(answer.status, what=WHAT, retry_after=answer.headers.get("retry-after"))
        created = answer.json()
        if not isinstance(created, dict) or "id" not in created:
            raise DeliveryError("Freshdesk answered 201 without a ticket id.", retryable=True, ambiguous=True)
        return Receipt(status=answer.status, latency_ms=spent, external_id=str(created["id"]), summary=summary)

    async def test(self, http: GuardedHttp, config: dict[str, Any], secrets: dict[str, str]) -> Receipt:
        """Check the domain and API key (``GET /api/v2/agents/me``)."""
        base = self.destination(config)
        answer = await self._get(http, base, "/api/v2/agents/me", secrets, {})
        return Receipt(
            status=answer.status,
            latency_ms=answer.latency_ms,
            summary={"method": "GET", "url": redact_url(base + "/api/v2/agents/me")},
        )
