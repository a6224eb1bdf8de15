"""Pure-ASGI middleware: request ids, log context, Prometheus metrics and a body size limit."""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from control_api.metrics import HTTP_LATENCY, HTTP_REQUESTS
from control_api.problems import problem_response
from control_api.security_headers import DEFAULT_HEADERS

access_log = structlog.get_logger("voxdesk.access")
_DEFAULT_HEADERS = [(k.lower().encode(), v.encode()) for k, v in DEFAULT_HEADERS.items()]


class BodyTooLargeError(Exception):
    """The client sent more bytes than allowed."""


class RequestContextMiddleware:
    """Give each request an id (``X-Request-ID``), bind it to the log context and meter the request.

    Bodies larger than ``max_body_bytes`` are refused with 413 problem JSON; multipart uploads are
    bounded by ``max_upload_bytes`` instead (their routes also check each file).
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] == "websocket":
            # The access line names the path only: a WebSocket's query may carry its access token.
            access_log.info("websocket", path=scope.get("path", ""))
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        limit = (
            self.max_upload_bytes if headers.get("content-type", "").startswith("multipart/") else self.max_body_bytes
        )
        status_holder: dict[str, int] = {"status": 500}
        start = time.perf_counter()
        structlog.contextvars.bind_contextvars(request_id=request_id)

        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._too_large(scope, receive, send, limit, status_holder)
            self._observe(scope, status_holder["status"], start)
            structlog.contextvars.unbind_contextvars("request_id")
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLargeError
            return message

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                present = {bytes(k).lower() for k, _ in message["headers"]}
                extra = [(b"x-request-id", request_id.encode())]
                # Headers a response did not set itself: nothing loads, nothing frames it, nothing sniffs it.
                extra += [(name, value) for name, value in _DEFAULT_HEADERS if name not in present]
                message["headers"] = [*message["headers"], *extra]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_wrapper)
        except BodyTooLargeError:
            await self._too_large(scope, receive, send, limit, status_holder)
        finally:
            self._observe(scope, status_holder["status"], start)
            structlog.contextvars.unbind_contextvars("request_id")

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, limit: int, holder: dict[str, int]) -> None:
        holder["status"] = 413
        response = problem_response(
            Request(scope, receive),
            413,
            f"The request body exceeds the limit of {limit} bytes.",
            type_="body-too-large",
        )
        await response(scope, receive, send)

    @staticmethod
    def _observe(scope: Scope, status: int, start: float) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "<unmatched>"
        method = scope.get("method", "GET")
        elapsed = time.perf_counter() - start
        HTTP_REQUESTS.labels(method=method, route=template, status=str(status)).inc()
        HTTP_LATENCY.labels(method=method, route=template).observe(elapsed)
        # The access line: the route's template, never the query string (tokens, search terms, caller data).
        access_log.info("http", method=method, route=template, status=status, ms=round(elapsed * 1000, 1))
