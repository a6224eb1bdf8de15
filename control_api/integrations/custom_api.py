"""The custom API builder (Integration Studio): an HTTP call the agent can make as a tool during a call.

An operator describes a tool (name, description, JSON-schema parameters) and the request behind it: method,
URL template, header templates, body template, and a response mapping from JSON pointers (``/order/status``)
or dotted paths (``order.items.0.name``) to named values, plus ``say``, the sentence the agent speaks built
from those values. Templates are Jinja2 in its immutable sandbox (``ImmutableSandboxedEnvironment``, strict
undefined): they read variables, never run code and cannot change anything; nothing is ``eval``-ed.

Template variables: ``args`` (the tool's arguments, validated against its JSON schema), ``caller``
(``name``, ``phone``, ``email``), ``call`` (``id``, ``summary``), ``secrets`` (the integration's secrets;
shown as ``‹secret NAME›`` in a dry run). The URL's scheme and host are literal (only its path and query may
be templated) so arguments can never send the request elsewhere; the rendered URL must keep that origin, and
it passes the SSRF rule again when sent (``GuardedHttp``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jsonschema_rs
from jinja2 import StrictUndefined, TemplateError
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from control_api.integrations.base import Job, Receipt
from control_api.integrations.errors import ConfigError, DeliveryError, IntegrationError, from_status
from control_api.integrations.http import GuardedHttp, check_url, redact_url

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
_TOOL_NAME = re.compile(r"^[a-z][a-z0-9_]{2,47}$")
# Names the agent's built-in tools use: a custom tool cannot shadow them.
RESERVED = frozenset({"search_knowledge_base", "create_ticket", "transfer_to_human", "end_call"})
_HEADER = re.compile(r"^[A-Za-z0-9-]{1,64}$")
_VALUE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,39}$")
_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)
_ENV.filters["tojson"] = lambda value: json.dumps(value)
MAX_TEMPLATE = 4000
MAX_RESPONSE = 1_000_000
MAX_SAY = 600


@dataclass(frozen=True, slots=True)
class RenderedRequest:
    """A request as it would be sent (in a dry run, secrets are masked)."""

    method: str
    url: str
    headers: dict[str, str]
    body: str | None

    def public(self) -> dict[str, Any]:
        """The request as JSON."""
        return {"method": self.method, "url": self.url, "headers": self.headers, "body": self.body}


@dataclass(slots=True)
class ToolResult:
    """What a custom tool call produced: the mapped values and the sentence the agent speaks."""

    ok: bool
    status: int | None
    values: dict[str, Any] = field(default_factory=dict)
    say: str | None = None
    error: str | None = None
    latency_ms: float | None = None

    def public(self) -> dict[str, Any]:
        """The result as JSON (what an LLM brain is handed)."""
        return {"ok": self.ok, "status": self.status, "values": self.values, "say": self.say, "error": self.error}


class _Masked(dict[str, str]):
    """Secrets in a dry run: every name reads as a placeholder."""

    def __missing__(self, key: str) -> str:
        return f"‹secret {key}›"


def _compile(source: object, where: str) -> str:
    if not isinstance(source, str) or len(source) > MAX_TEMPLATE:
        raise ConfigError(f"config.{where} must be a template of at most {MAX_TEMPLATE} characters.")
    try:
        _ENV.from_string(source)
    except TemplateError as exc:
        raise ConfigError(f"config.{where} is not a valid template: {exc.message or type(exc).__name__}.") from None
    return source


def _render(source: str, variables: dict[str, Any], where: str) -> str:
    try:
        return _ENV.from_string(source).render(variables)
    except SecurityError:
        raise ConfigError(f"The {where} template tried something the sandbox forbids.") from None
    except TemplateError as exc:
        raise ConfigError(f"The {where} template failed: {exc.message or type(exc).__name__}.") from None


def _origin(url: str) -> str:
    parts = urlsplit(url.strip())
    return f"{parts.scheme}://{parts.netloc}".lower()


def lookup(document: Any, path: str) -> Any:
    """The value at ``path`` in ``document``: a JSON pointer (RFC 6901, ``/a/0/b``) or a dotted path (``a.0.b``).

    Returns None when the path does not exist.
    """
    if path == "":
        return document
    if path.startswith("/"):
        steps = [s.replace("~1", "/").replace("~0", "~") for s in path[1:].split("/")]
    else:
        steps = path.split(".")
    current = document
    for step in steps:
        if isinstance(current, dict):
            if step not in current:
                return None
            current = current[step]
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            return None
    return current


def _check_tool(tool: object) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise ConfigError("config.tool is required: name, description, parameters (a JSON schema).")
    name, description = tool.get("name"), tool.get("description")
    if not isinstance(name, str) or not _TOOL_NAME.match(name) or name in RESERVED:
        raise ConfigError(
            "config.tool.name must be 3-48 lower-case letters, digits or _, starting with a letter, "
            "and not a built-in tool's name."
        )
    if not isinstance(description, str) or not 10 <= len(description) <= 500:
        raise ConfigError("config.tool.description must say in 10-500 characters when the agent should use it.")
    parameters = tool.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict) or parameters.get("type") != "object":
        raise ConfigError('config.tool.parameters must be a JSON schema of "type": "object".')
    try:
        valid = jsonschema_rs.meta.is_valid(parameters)
    except Exception:  # noqa: BLE001 - the library raises its own errors for unresolvable schemas
        valid = False
    if not valid:
        raise ConfigError("config.tool.parameters is not a valid JSON schema.")
    examples = tool.get("examples", [])
    if (
        not isinstance(examples, list)
        or not all(isinstance(e, str) and e.strip() for e in examples)
        or len(examples) > 20
    ):
        raise ConfigError("config.tool.examples must be up to 20 phrases a caller might say.")
    return {"name": name, "description": description, "parameters": parameters, "examples": examples}


def check_arguments(config: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Raise ``ConfigError`` when ``arguments`` break the tool's parameter schema."""
    validator = jsonschema_rs.validator_for(config["tool"]["parameters"])
    errors = [e.message for e in validator.iter_errors(arguments)]
    if errors:
        raise ConfigError("The tool's arguments are not valid: " + "; ".join(errors[:3]))


class CustomApiConnector:
    """The ``custom_api`` kind: called synchronously as an agent tool, never through the outbox."""

    kind: str = "custom_api"
    # Any names: the templates refer to them as ``secrets.NAME``.
    secret_fields: tuple[str, ...] = ()

    def check(self, config: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        """Validate the tool, the templates and the response mapping."""
        allowed = {"tool", "method", "url", "headers", "body", "response", "say", "timeout_secs", "test_arguments"}
        unknown = set(config) - allowed
        if unknown:
            raise ConfigError(f"Unknown custom API config fields: {', '.join(sorted(unknown))}.")
        method = str(config.get("method", "GET")).upper()
        if method not in METHODS:
            raise ConfigError(f"config.method must be one of: {', '.join(METHODS)}.")
        url = _compile(config.get("url"), "url")
        origin_part = url.split("://", 1)[-1].split("/", 1)[0]
        if "://" in url and ("{" in origin_part or "?" in origin_part):
            raise ConfigError("config.url's scheme and host must be literal; only the path and query are templates.")
        check_url(url.split("{", 1)[0])
        headers = config.get("headers", {})
        if not isinstance(headers, dict) or len(headers) > 20:
            raise ConfigError("config.headers must be an object of up to 20 header templates.")
        for name in headers:
            if not _HEADER.match(str(name)) or str(name).lower() in ("host", "content-length"):
                raise ConfigError(f"config.headers: {name!r} is not a header this tool may set.")
        out: dict[str, Any] = {
            "tool": _check_tool(config.get("tool")),
            "method": method,
            "url": url.strip(),
            "headers": {str(k): _compile(v, f"headers.{k}") for k, v in headers.items()},
        }
        if config.get("body") not in (None, ""):
            if method in ("GET", "DELETE"):
                raise ConfigError(f"A {method} request has no body.")
            out["body"] = _compile(config["body"], "body")
        mapping = config.get("response", {})
        if not isinstance(mapping, dict) or len(mapping) > 20:
            raise ConfigError("config.response maps up to 20 value names to JSON pointers or dotted paths.")
        for name, path in mapping.items():
            if not _VALUE_NAME.match(str(name)) or not isinstance(path, str) or len(path) > 200:
                raise ConfigError(f"config.response: {name!r} must map a lower-case name to a path.")
        out["response"] = dict(mapping)
        out["say"] = _compile(config.get("say", ""), "say") if config.get("say") else ""
        timeout = config.get("timeout_secs", 4.0)
        if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not 0.5 <= float(timeout) <= 10:
            raise ConfigError("config.timeout_secs must be 0.5-10 seconds (the caller is waiting).")
        out["timeout_secs"] = float(timeout)
        test_arguments = config.get("test_arguments", {})
        if not isinstance(test_arguments, dict):
            raise ConfigError("config.test_arguments must be an object of tool arguments.")
        out["test_arguments"] = test_arguments
        if not all(isinstance(v, str) for v in secrets.values()):
            raise ConfigError("secrets must be strings.")
        return out

    def destination(self, config: dict[str, Any]) -> str:
        """The API's origin (the literal scheme and host of the URL template)."""
        return _origin(str(config["url"]).split("{", 1)[0])

    def subscribes(self, config: dict[str, Any], event: str) -> bool:
        """None: a custom API is called as a tool, not sent events."""
        del config, event
        return False

    def render(
        self,
        config: dict[str, Any],
        secrets: dict[str, str] | None,
        *,
        arguments: dict[str, Any],
        caller: dict[str, Any] | None = None,
        call: dict[str, Any] | None = None,
    ) -> RenderedRequest:
        """The request for ``arguments``; ``secrets=None`` masks them (a dry run).

        Raises:
            ConfigError: The arguments break the schema, a template fails, or the URL leaves its origin.

        """
        check_arguments(config, arguments)
        variables = {
            "args": arguments,
            "caller": {"name": None, "phone": None, "email": None, **(caller or {})},
            "call": {"id": None, "summary": None, **(call or {})},
            "secrets": _Masked() if secrets is None else dict(secrets),
        }
        url = _render(str(config["url"]), variables, "url").strip()
        check_url(url)
        if _origin(url) != self.destination(config):
            raise ConfigError("The rendered URL left the API's host; check the URL template.")
        headers = {k: _render(v, variables, f"header {k}") for k, v in dict(config.get("headers", {})).items()}
        body = _render(str(config["body"]), variables, "body") if config.get("body") else None
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return RenderedRequest(method=str(config["method"]), url=url, headers=headers, body=body)

    def speak(self, config: dict[str, Any], values: dict[str, Any]) -> str | None:
        """The sentence the agent says, from the mapped values (None when no ``say`` template is set)."""
        if not config.get("say"):
            return None
        text = " ".join(_render(str(config["say"]), {**values, "values": values}, "say").split())
        return text[:MAX_SAY] or None

    async def call(
        self,
        http: GuardedHttp,
        config: dict[str, Any],
        secrets: dict[str, str],
        *,
        arguments: dict[str, Any],
        caller: dict[str, Any] | None = None,
        call: dict[str, Any] | None = None,
    ) -> ToolResult:
        """Send the request and map its answer; failures come back as ``ok=False`` with an operator message."""
        try:
            request = self.render(config, secrets, arguments=arguments, caller=caller, call=call)
            answer = await http.request(
                request.method,
                request.url,
                headers=request.headers,
                content=request.body.encode() if request.body is not None else None,
            )
        except IntegrationError as exc:  # refused (SSRF), unreachable, timed out, or a template failed
            return ToolResult(ok=False, status=exc.status, error=exc.message)
        if not 200 <= answer.status < 300:
            error = from_status(answer.status, what="The API")
            return ToolResult(ok=False, status=answer.status, error=error.message, latency_ms=answer.latency_ms)
        document = answer.json() if len(answer.body) <= MAX_RESPONSE else None
        values = {name: lookup(document, str(path)) for name, path in dict(config.get("response", {})).items()}
        try:
            say = self.speak(config, values)
        except ConfigError as exc:
            return ToolResult(ok=False, status=answer.status, values=values, error=exc.message)
        return ToolResult(ok=True, status=answer.status, values=values, say=say, latency_ms=answer.latency_ms)

    async def deliver(self, http: GuardedHttp, job: Job) -> Receipt:
        """Never used: custom APIs are not sent outbox deliveries."""
        del http
        raise ConfigError(f"A custom API integration is called as a tool, not sent {job.event} events.")

    async def test(self, http: GuardedHttp, config: dict[str, Any], secrets: dict[str, str]) -> Receipt:
        """Really call the API with ``config.test_arguments``."""
        result = await self.call(http, config, secrets, arguments=dict(config.get("test_arguments", {})))
        if not result.ok:
            raise DeliveryError(result.error or "The call failed.", status=result.status)
        summary = {
            "method": config["method"],
            "url": redact_url(self.destination(config)),
            "values": sorted(result.values),
        }
        return Receipt(status=result.status or 200, latency_ms=result.latency_ms or 0.0, summary=summary)
