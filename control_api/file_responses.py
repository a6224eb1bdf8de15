"""File downloads whose refused byte ranges answer as RFC 9457 problem JSON, like every other API error."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import FileResponse
from starlette.types import Message, Receive, Scope, Send

from control_api.problems import problem_response

# The statuses Starlette's FileResponse answers a Range header it refuses with (as text/plain): 400 for a
# malformed header, 416 (with ``Content-Range: bytes */SIZE``) for a range outside the file.
_RANGE_REFUSALS = {400: "invalid-range", 416: "range-not-satisfiable"}


class ProblemFileResponse(FileResponse):
    """Starlette's ``FileResponse`` (ranges, If-Range, HEAD), with its range refusals turned into problem JSON.

    Starlette parses the Range header and decides; this only reshapes the refusal it sends, keeping its status,
    its reason as the ``detail`` and the ``Content-Range`` header of a 416.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the file; a refused range is answered as problem JSON."""
        refusal: Message | None = None

        async def reshape(message: Message) -> None:
            nonlocal refusal
            if message["type"] == "http.response.start" and message["status"] in _RANGE_REFUSALS:
                refusal = message
                return
            if refusal is None or message["type"] != "http.response.body":
                await send(message)
                return
            status: int = refusal["status"]
            headers = {
                name.decode("latin-1"): value.decode("latin-1")
                for name, value in refusal["headers"]
                if name.lower() == b"content-range"
            }
            reason = bytes(message.get("body", b"")).decode("utf-8", "replace").strip()
            if status == 416:
                size = headers.get("content-range", "").rpartition("/")[2]
                reason = f"The requested range starts beyond the end of the file ({size} bytes)."
            problem = problem_response(
                Request(scope), status, reason or None, type_=_RANGE_REFUSALS[status], headers=headers
            )
            refusal = None
            await problem(scope, receive, send)

        await super().__call__(scope, receive, reshape)
