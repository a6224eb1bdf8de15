"""Local HTTP stand-ins for integration tests: a Standard Webhooks receiver and a Freshdesk v2 stand-in.

Each runs a real aiohttp server on a loopback port in its own thread, can be stopped (the destination is
down) and started again on the same port, and checks every request against the vendor's documented
contract, answering 400 the way the vendor would when a request breaks it.
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThreadedServer:
    """An aiohttp application served on 127.0.0.1:``port`` from a background thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            app = web.Application()
            self.routes(app)
            self._runner = web.AppRunner(app)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
            loop.run_until_complete(site.start())
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10), "stand-in did not start"

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            loop = self._loop

            def halt() -> None:
                # Requests still being answered (a deliberately hanging one: ``hang_after_create``) are cancelled;
                # otherwise the runner's cleanup would wait for them and the join below would time out.
                for task in asyncio.all_tasks(loop):
                    task.cancel()
                loop.stop()

            loop.call_soon_threadsafe(halt)
            self._thread.join(10)
            self._loop = None
            self._thread = None


class WebhookReceiver(ThreadedServer):
    """Verifies each delivery with the ``standardwebhooks`` library and keeps the verified ones."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self._verifier = Webhook(secret)
        self.received: list[dict[str, Any]] = []  # {"id", "type", "data"}
        self.rejected = 0
        self.redirect_to: str | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/hooks/voxdesk", self._handle)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.redirect_to:
            raise web.HTTPFound(self.redirect_to)
        body = await request.read()
        try:
            event = self._verifier.verify(body, dict(request.headers))
        except WebhookVerificationError:
            with self.lock:
                self.rejected += 1
            return web.Response(status=400, text="bad signature")
        assert request.headers["content-type"] == "application/json"
        with self.lock:
            self.received.append({"id": request.headers["webhook-id"], **event})
        return web.Response(status=204)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [e for e in self.received if kind is None or e["type"] == kind]


class FreshdeskStandIn(ThreadedServer):
    """Freshdesk API v2 (tickets, contacts, ticket search, agents/me) for one API key.

    The contract checked (Freshdesk API v2 reference): basic auth with ``api_key:X``; ``application/json``
    bodies; a ticket needs one of requester_id, email, facebook_id, phone, twitter_id, unique_external_id,
    a name when only a phone is given, subject and description, status in 2..5, priority in 1..4, and no
    unknown fields (400 ``invalid_field``).
    """

    # Formatting is off for this statement: the field names stay in rows, as Freshdesk's API reference lists them.
    TICKET_FIELDS = frozenset(
        {
            "name", "requester_id", "email", "facebook_id", "phone", "twitter_id", "unique_external_id",
            "subject", "type", "status", "priority", "description", "responder_id", "attachments", "cc_emails",
            "custom_fields", "due_by", "email_config_id", "fr_due_by", "group_id", "parent_id", "product_id",
            "source", "tags", "company_id", "internal_agent_id", "internal_group_id", "lookup_parameter",
        }
    )  # fmt: skip
    REQUESTER = ("requester_id", "email", "facebook_id", "phone", "twitter_id", "unique_external_id")

    def __init__(self, api_key: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.tickets: list[dict[str, Any]] = []
        self.contacts: list[dict[str, Any]] = [{"id": 7001, "email": "known@caller.example", "phone": "+911234567890"}]
        self.requests: list[tuple[str, str]] = []
        self.violations: list[str] = []
        self.fail_after_create = 0  # answer 500 after storing this many more tickets (an ambiguous failure)
        self.hang_after_create = 0.0  # seconds to wait after storing a ticket before answering

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v2/tickets", self._create_ticket)
        app.router.add_get("/api/v2/contacts", self._contacts)
        app.router.add_get("/api/v2/search/tickets", self._search)
        app.router.add_get("/api/v2/agents/me", self._me)

    def _authorised(self, request: web.Request) -> bool:
        expected = "Basic " + base64.b64encode(f"{self.api_key}:X".encode()).decode()
        return request.headers.get("Authorization") == expected

    def _invalid(self, message: str, field: str = "") -> web.Response:
        self.violations.append(message)
        return web.json_response(
            {
                "description": "Validation failed",
                "errors": [{"field": field, "message": message, "code": "invalid_value"}],
            },
            status=400,
        )

    async def _create_ticket(self, request: web.Request) -> web.StreamResponse:
        with self.lock:
            self.requests.append(("POST", request.path))
        if not self._authorised(request):
            return web.json_response({"code": "invalid_credentials", "message": "You have to be logged in"}, status=401)
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return self._invalid("Content-Type must be application/json")
        body = await request.json()
        unknown = set(body) - self.TICKET_FIELDS
        if unknown:
            return self._invalid(f"Unexpected/invalid field in request: {sorted(unknown)}", "invalid_field")
        if not any(body.get(f) for f in self.REQUESTER):
            return self._invalid("Please fill at least 1 of requester_id, phone, email, ...", "requester_id")
        if body.get("phone") and not body.get("email") and not body.get("requester_id") and not body.get("name"):
            return self._invalid("name is mandatory when only phone is given", "name")
        for field in ("subject", "description"):
            if not isinstance(body.get(field), str) or not body[field]:
                return self._invalid(f"{field} is required", field)
        if body.get("status") not in (2, 3, 4, 5):
            return self._invalid("status must be 2..5", "status")
        if body.get("priority") not in (1, 2, 3, 4):
            return self._invalid("priority must be 1..4", "priority")
        if "source" in body and body["source"] not in (1, 2, 3, 5, 6, 7, 9, 10):
            return self._invalid("invalid source", "source")
        if "tags" in body and not all(isinstance(t, str) for t in body["tags"]):
            return self._invalid("tags must be strings", "tags")
        with self.lock:
            ticket = {"id": 1000 + len(self.tickets), **body}
            self.tickets.append(ticket)
            fail = self.fail_after_create > 0
            if fail:
                self.fail_after_create -= 1
        if self.hang_after_create:
            await asyncio.sleep(self.hang_after_create)
        if fail:
            return web.json_response({"description": "Internal error"}, status=500)
        return web.json_response(ticket, status=201)

    async def _contacts(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"code": "invalid_credentials"}, status=401)
        email, phone = request.query.get("email"), request.query.get("phone")
        if not email and not phone:
            return web.json_response([c for c in self.contacts])
        found = [c for c in self.contacts if (email and c["email"] == email) or (phone and c["phone"] == phone)]
        return web.json_response(found)

    async def _search(self, request: web.Request) -> web.StreamResponse:
        with self.lock:
            self.requests.append(("GET", request.path))
        if not self._authorised(request):
            return web.json_response({"code": "invalid_credentials"}, status=401)
        match = re.fullmatch(r"\"tag:'([^']+)'\"", request.query.get("query", ""))
        if match is None:
            return self._invalid("query must be a quoted expression", "query")
        with self.lock:
            results = [t for t in self.tickets if match.group(1) in t.get("tags", [])]
        return web.json_response({"results": results, "total": len(results)})

    async def _me(self, request: web.Request) -> web.StreamResponse:
        if not self._authorised(request):
            return web.json_response({"code": "invalid_credentials"}, status=401)
        return web.json_response({"id": 1, "contact": {"email": "agent@acme.example"}})


class SlackStandIn(ThreadedServer):
    """A Slack incoming webhook (``POST /services/T…/B…/…``), checked against Slack's documented contract.

    Contract: ``POST`` with ``Content-Type: application/json``; a JSON object with ``text`` (a string, the
    notification fallback) and optional ``blocks`` (a list of at most 50 Block Kit blocks, each with a known
    ``type``; a ``header`` takes ``plain_text`` of at most 150 characters, a ``section`` text at most 3000).
    Answers: ``200 ok``; ``400 invalid_payload``; ``404 no_service`` (unknown webhook); ``410
    channel_is_archived``; ``403 invalid_token``; ``429`` with ``Retry-After`` when rate limited.
    """

    PATH = "/services/T0001/B0001/abcdefghijklmnopqrstuvwx"
    BLOCK_TYPES = frozenset({"header", "section", "divider", "context", "actions", "image", "rich_text"})

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.violations: list[str] = []
        self.mode = "ok"  # ok | archived | revoked | rate_limited_once
        self.rate_limited = 0

    @property
    def webhook_url(self) -> str:
        return self.url + self.PATH

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/services/{team}/{bot}/{token}", self._handle)

    def _invalid(self, why: str) -> web.Response:
        self.violations.append(why)
        return web.Response(status=400, text="invalid_payload")

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path != self.PATH:
            return web.Response(status=404, text="no_service")
        if request.method != "POST":
            return web.Response(status=405, text="invalid_method")
        if self.mode == "archived":
            return web.Response(status=410, text="channel_is_archived")
        if self.mode == "revoked":
            return web.Response(status=403, text="invalid_token")
        if self.mode == "rate_limited_once" and self.rate_limited == 0:
            self.rate_limited += 1
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": "1"})
        if not request.headers.get("Content-Type", "").startswith("application/json"):
            return self._invalid("Content-Type must be application/json")
        try:
            body = await request.json()
        except ValueError:
            return self._invalid("body is not JSON")
        if not isinstance(body, dict) or not isinstance(body.get("text"), str) or not body["text"]:
            return self._invalid("text (the fallback) is required")
        blocks = body.get("blocks", [])
        if not isinstance(blocks, list) or len(blocks) > 50:
            return self._invalid("blocks must be a list of at most 50")
        for block in blocks:
            if not isinstance(block, dict) or block.get("type") not in self.BLOCK_TYPES:
                return self._invalid(f"unknown block {block!r}")
            text = block.get("text")
            if block["type"] == "header" and (
                not isinstance(text, dict) or text.get("type") != "plain_text" or len(text.get("text", "")) > 150
            ):
                return self._invalid("header text must be plain_text of at most 150 characters")
            if block["type"] == "section" and (
                not isinstance(text, dict)
                or text.get("type") not in ("plain_text", "mrkdwn")
                or not 1 <= len(text.get("text", "")) <= 3000
            ):
                return self._invalid("section text must be plain_text/mrkdwn of 1..3000 characters")
        with self.lock:
            self.messages.append(body)
        return web.Response(status=200, text="ok", content_type="text/plain")


ORDERS_TOKEN = "orders-api-token-77aa"


class OrdersApi(ThreadedServer):
    """An order-status API: ``POST /v1/orders/{id}/status`` with a bearer token and a JSON body."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/v1/orders/{order_id}/status", self._status)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        with self.lock:
            self.requests.append({"headers": dict(request.headers), "body": body, "query": dict(request.query)})
        if request.headers.get("Authorization") != f"Bearer {ORDERS_TOKEN}":
            return web.json_response({"error": "unauthorised"}, status=401)
        order = request.match_info["order_id"]
        if order == "404":
            return web.json_response({"error": "no such order"}, status=404)
        return web.json_response(
            {"order": {"id": order, "status": "shipped", "items": [{"name": "Router X2"}]}, "eta/date": "Friday"}
        )
