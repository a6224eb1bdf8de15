"""A local stand-in for Telnyx's Call Control API: every command Voxdesk sends is checked against Telnyx's
documented contract (https://developers.telnyx.com/api/call-control: ``POST /v2/calls/{call_control_id}/actions/
{answer|reject|streaming_start|hangup|transfer}``, ``Authorization: Bearer <API key>``, a JSON body of the
documented fields). A request that breaks the contract is answered 422 the way Telnyx does and kept in
``violations``; the tests assert there are none.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

_CODECS = {"PCMU", "PCMA", "G722", "OPUS", "AMR-WB"}
_COMMON = {"client_state", "command_id"}
# The documented body fields per action (the subset a stream-answering application may send) and their checks.
_FIELDS: dict[str, set[str]] = {
    "answer": _COMMON
    | {"billing_group_id", "webhook_url", "webhook_url_method", "stream_url", "stream_track", "send_silence_when_idle"},
    "reject": _COMMON | {"cause"},
    "streaming_start": _COMMON
    | {
        "stream_url",
        "stream_track",
        "stream_codec",
        "stream_bidirectional_mode",
        "stream_bidirectional_codec",
        "stream_bidirectional_target_legs",
        "enable_dialogflow",
        "dialogflow_config",
    },
    "hangup": _COMMON,
    "transfer": _COMMON
    | {"to", "from", "from_display_name", "audio_url", "timeout_secs", "time_limit_secs", "webhook_url"},
}
_REQUIRED = {"reject": {"cause"}, "streaming_start": {"stream_url"}, "transfer": {"to"}}
_PATH = re.compile(r"^/v2/calls/(?P<id>[^/]+)/actions/(?P<action>[a-z_]+)$")


def _problems(action: str, body: dict[str, Any]) -> list[str]:
    problems = [f"unknown field {name}" for name in sorted(set(body) - _FIELDS[action])]
    problems += [f"missing {name}" for name in sorted(_REQUIRED.get(action, set()) - set(body))]
    if "command_id" in body and not isinstance(body["command_id"], str):
        problems.append("command_id must be a string")
    if "client_state" in body:
        try:
            base64.b64decode(str(body["client_state"]), validate=True)
        except (ValueError, binascii.Error):
            problems.append("client_state must be base64")
    if action == "reject" and body.get("cause") not in {"CALL_REJECTED", "USER_BUSY"}:
        problems.append("cause must be CALL_REJECTED or USER_BUSY")
    if "stream_url" in body and not str(body["stream_url"]).startswith(("ws://", "wss://")):
        problems.append("stream_url must be a WebSocket URL")
    if body.get("stream_track", "inbound_track") not in {"inbound_track", "outbound_track", "both_tracks"}:
        problems.append("bad stream_track")
    if body.get("stream_bidirectional_mode", "mp3") not in {"mp3", "rtp"}:
        problems.append("bad stream_bidirectional_mode")
    if body.get("stream_bidirectional_codec", "PCMU") not in _CODECS:
        problems.append("bad stream_bidirectional_codec (case sensitive)")
    if action == "transfer":
        to = str(body.get("to", ""))
        if not (re.fullmatch(r"\+[1-9]\d{6,14}", to) or to.startswith(("sip:", "sips:"))):
            problems.append("to must be E.164 or a SIP URI")
    return problems


@dataclass
class TelnyxStandIn:
    """The stand-in's record: commands accepted (``(call_control_id, action, body)``) and contract violations."""

    api_key: str
    known_calls: set[str] = field(default_factory=set)
    commands: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def actions(self, call_control_id: str) -> list[str]:
        with self.lock:
            return [action for ccid, action, _ in self.commands if ccid == call_control_id]

    def body(self, call_control_id: str, action: str) -> dict[str, Any]:
        with self.lock:
            return next(b for ccid, a, b in self.commands if ccid == call_control_id and a == action)

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        def refuse(status: int, code: str, detail: str) -> tuple[int, dict[str, Any]]:
            with self.lock:
                self.violations.append(f"{method} {path}: {detail}")
            return status, {"errors": [{"code": code, "title": "Invalid request", "detail": detail}]}

        if headers.get("authorization") != f"Bearer {self.api_key}":
            return refuse(401, "10009", "Authorization must be Bearer <API key>")
        match = _PATH.match(urlsplit(path).path)
        if method != "POST" or match is None or match["action"] not in _FIELDS:
            return refuse(404, "10005", "no such Call Control command")
        if not headers.get("content-type", "").startswith("application/json"):
            return refuse(415, "10015", "Content-Type must be application/json")
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return refuse(400, "10015", "body is not JSON")
        if not isinstance(body, dict):
            return refuse(422, "10015", "body must be a JSON object")
        ccid, action = unquote(match["id"]), match["action"]
        if ccid not in self.known_calls:
            return refuse(404, "90015", "unknown call_control_id")
        problems = _problems(action, body)
        if problems:
            return refuse(422, "10015", "; ".join(problems))
        with self.lock:
            if ccid in self.ended:
                return 422, {"errors": [{"code": "90018", "title": "Call has already ended"}]}
            self.commands.append((ccid, action, body))
            if action in {"hangup", "reject", "transfer"}:
                self.ended.add(ccid)
        return 200, {"data": {"result": "ok"}}


class StandIn(Protocol):
    """A vendor API stand-in: answers one request with a status and a JSON body."""

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]: ...


def serve(stand_in: StandIn, *, base_path: str = "/v2") -> tuple[ThreadingHTTPServer, str]:
    """Serve ``stand_in`` on a free loopback port; returns the server and its API base (``...`` + ``base_path``)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("content-length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = stand_in.handle("POST", self.path, headers, raw)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}{base_path}"
