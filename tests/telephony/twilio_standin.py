"""A local stand-in for Twilio's Calls REST API: every request Voxdesk sends is checked against Twilio's documented
contract for updating a live call (https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource:
``POST /2010-04-01/Accounts/{AccountSid}/Calls/{Sid}.json``, HTTP Basic with the account SID and auth token, a
form-encoded body of the documented parameters; ``Status`` is ``canceled`` or ``completed``; ``Twiml`` is a TwiML
document). A request that breaks the contract is answered with Twilio's error shape and kept in ``violations``;
the tests assert there are none. A call that already ended answers 404 with code 20404, as Twilio does.
"""

from __future__ import annotations

import base64
import re
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Calls/(?P<call>CA[0-9a-fA-F]{32})\.json$")
_FIELDS = {
    "Url",
    "Method",
    "Status",
    "FallbackUrl",
    "FallbackMethod",
    "StatusCallback",
    "StatusCallbackMethod",
    "Twiml",
    "TimeLimit",
}
_DIAL_NOUNS = {"Number", "Sip", "Client", "Conference", "Queue", "Sim"}


def _problems(form: dict[str, str]) -> list[str]:
    problems = [f"unknown parameter {name}" for name in sorted(set(form) - _FIELDS)]
    if not form:
        problems.append("nothing to update")
    if "Status" in form and form["Status"] not in {"canceled", "completed"}:
        problems.append("Status must be canceled or completed")
    if "Twiml" in form:
        try:
            root = ET.fromstring(form["Twiml"])
        except ET.ParseError:
            return [*problems, "Twiml is not XML"]
        if root.tag != "Response":
            problems.append("Twiml's root must be <Response>")
        for dial in root.iter("Dial"):
            nouns = [child for child in dial if child.tag in _DIAL_NOUNS]
            if not nouns and not (dial.text or "").strip():
                problems.append("<Dial> needs a number or a noun")
            for noun in nouns:
                target = (noun.text or "").strip()
                if noun.tag == "Number" and not re.fullmatch(r"\+?[0-9*#]{3,20}", target):
                    problems.append("<Number> must hold a phone number")
                if noun.tag == "Sip" and not target.lower().startswith(("sip:", "sips:")):
                    problems.append("<Sip> must hold a SIP URI")
    return problems


@dataclass
class TwilioStandIn:
    """The stand-in's record: updates accepted (``(call_sid, form)``) and contract violations."""

    account_sid: str
    auth_token: str
    updates: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    ended: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def of(self, call_sid: str) -> list[dict[str, str]]:
        with self.lock:
            return [form for sid, form in self.updates if sid == call_sid]

    def handle(self, method: str, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        def refuse(status: int, code: int, detail: str) -> tuple[int, dict[str, Any]]:
            with self.lock:
                self.violations.append(f"{method} {path}: {detail}")
            return status, {"code": code, "message": detail, "status": status}

        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if headers.get("authorization") != expected:
            return refuse(401, 20003, "Authenticate with the account SID and auth token")
        match = _PATH.match(urlsplit(path).path)
        if method != "POST" or match is None or match["account"] != self.account_sid:
            return refuse(404, 20404, "The requested resource was not found")
        if not headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            return refuse(400, 21200, "The body must be form-encoded")
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        problems = _problems(form)
        if problems:
            return refuse(400, 21200, "; ".join(problems))
        call = match["call"]
        with self.lock:
            if call in self.ended:
                return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}
            self.updates.append((call, form))
            self.ended.add(call)  # a hang-up ends the call; new TwiML takes it off this application
        return 200, {"sid": call, "account_sid": self.account_sid, "status": "in-progress"}
