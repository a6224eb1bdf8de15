#!/usr/bin/env python
"""Render ``docs/api.md`` from the server's OpenAPI contract, and refresh the other generated doc sections.

The full server is built exactly as ``voxdesk serve`` builds it (``agent.server.build_app``), its
``app.openapi()`` is rendered as a Markdown reference (per tag: method and path, summary, who may call it,
parameters, request and response schema names, a curl example; then every schema's fields), and the WebSocket
routes, which OpenAPI cannot describe, are listed from ``app.routes``. Who may call a route comes from
``tests/route_roles.py`` (the table the route × role test checks against the live server) and the permission
from the route's ``require(...)`` dependency.

The same run refreshes the two other generated sections of the docs, between their HTML comment markers: the
configuration reference in ``docs/configuration.md`` (``config.reference.render_markdown``) and the role matrix
in ``docs/ADMIN_GUIDE.md`` (``control_api.rbac.matrix_markdown``).

Usage::

    .venv/bin/python scripts/gen_api_docs.py           # rewrite docs/api.md
    .venv/bin/python scripts/gen_api_docs.py --check   # exit 1 when a generated page or section is stale
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "api.md"
BASE = "$VOXDESK_URL"
METHODS = ("get", "post", "put", "patch", "delete")
USAGE_NOTE = (
    "Examples use `VOXDESK_URL=http://127.0.0.1:8000` and `TOKEN`, an access token from `POST /api/auth/login` "
    '(`TOKEN=$(curl -s -d username=you@example.com -d password="$PASSWORD" "$VOXDESK_URL/api/auth/login" | jq -r '
    ".access_token)`). The console's cookie session works too; with it, unsafe methods also need the "
    "`X-CSRF-Token` header."
)

Schema = Mapping[str, Any]


def build_contract() -> tuple[dict[str, Any], list[str], dict[tuple[str, str], str]]:
    """Build the server with default settings on a throwaway data dir.

    Returns:
        The OpenAPI document, the WebSocket paths, and the permission each route requires, keyed by
        (method, path).

    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from fastapi.routing import APIRoute, APIWebSocketRoute, iter_route_contexts

    from agent.server import build_app
    from config import Settings

    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(_env_file=None, env="test", data_dir=Path(data_dir))
        app = build_app(settings)
        contract = app.openapi()
    websockets: list[str] = []
    permissions: dict[tuple[str, str], str] = {}
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        path = str(context.path or getattr(route, "path", ""))
        if isinstance(route, APIWebSocketRoute):
            websockets.append(path)
            methods = ["WS"]
        elif isinstance(route, APIRoute):
            methods = sorted(context.methods or route.methods or ())
        else:
            continue
        needed = ", ".join(sorted(set(_permissions(getattr(context, "dependant", route.dependant)))))
        for method in methods:
            if needed:
                permissions[(method.upper(), path)] = needed
    websockets.sort()
    return contract, websockets, permissions


def _permissions(dependant: Any) -> Iterator[str]:
    """Permissions named by ``control_api.deps.require(...)`` anywhere in a route's dependency tree."""
    from control_api.rbac import Permission

    for sub in dependant.dependencies:
        call = sub.call
        if call is not None and inspect.isfunction(call) and call.__closure__:
            needed = inspect.getclosurevars(call).nonlocals.get("permission")
            if isinstance(needed, Permission):
                yield needed.value
        yield from _permissions(sub)


def route_roles() -> dict[tuple[str, str], str]:
    """Who may call each route, from ``tests/route_roles.py`` (empty when the tests are not present)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from tests.route_roles import ROLES, ROUTE_ROLES
    except ImportError:
        return {}
    out: dict[tuple[str, str], str] = {}
    for key, access in ROUTE_ROLES.items():
        roles = [role for role in ROLES if role in access.roles]
        text = "anyone (no sign-in)" if access.public else ", ".join(roles)
        out[key] = text
    return out


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_of(schema: Schema) -> str:
    """A short type for a JSON schema: ``UserPublic``, ``list of str``, ``str (optional)``, ``a | b``."""
    if "$ref" in schema:
        return f"`{_ref_name(schema['$ref'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            text = " \\| ".join(type_of(s) for s in options) or "null"
            return text + (" or null" if len(options) < len(schema[key]) else "")
    kind = schema.get("type")
    if kind == "array":
        return "list of " + type_of(schema.get("items", {}))
    if kind == "object" and "additionalProperties" in schema and isinstance(schema["additionalProperties"], dict):
        return "map of " + type_of(schema["additionalProperties"])
    names = {"string": "str", "integer": "int", "number": "float", "boolean": "bool", "object": "object"}
    text = names.get(str(kind), str(kind) if kind else "any")
    if schema.get("format") in {"date-time", "email", "uuid", "binary", "uri", "date"}:
        text += f" ({schema['format']})"
    return text


def _example_value(schema: Schema, components: Schema, depth: int = 0) -> Any:
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "$ref" in schema:
        target = components.get(_ref_name(schema["$ref"]), {})
        return _example_value(target, components, depth + 1) if depth < 4 else {}
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"]
            return _example_value(options[0], components, depth) if options else None
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        return example_object(schema, components, depth + 1)
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "number":
        return 1.0
    if kind == "boolean":
        return True
    formats = {"email": "user@example.com", "date-time": "2026-01-01T00:00:00Z", "uri": "https://example.com/faq"}
    return formats.get(str(schema.get("format")), "...")


def example_object(schema: Schema, components: Schema, depth: int = 0) -> dict[str, Any]:
    """An example body: the required properties of ``schema`` with placeholder values."""
    required = schema.get("required", [])
    properties = schema.get("properties", {})
    return {name: _example_value(properties[name], components, depth) for name in required if name in properties}


def curl(method: str, path: str, op: Schema, components: Schema) -> str:
    """A curl command calling ``op`` with its required parameters and body."""
    parts = ["curl"]
    if method != "get":
        parts.append(f"-X {method.upper()}")
    if op.get("security"):
        parts.append('-H "Authorization: Bearer $TOKEN"')
    query = [
        f"{p['name']}={_example_value(p.get('schema', {}), components)}"
        for p in op.get("parameters", [])
        if p.get("in") == "query" and p.get("required")
    ]
    body = op.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        schema = body["application/json"]["schema"]
        if "$ref" in schema:
            schema = components.get(_ref_name(schema["$ref"]), {})
        payload = json.dumps(example_object(schema, components), ensure_ascii=False)
        parts.append("-H 'Content-Type: application/json'")
        parts.append(f"-d '{payload}'")
    elif "application/x-www-form-urlencoded" in body:
        schema = components.get(_ref_name(body["application/x-www-form-urlencoded"]["schema"]["$ref"]), {})
        parts.extend(f"-d {name}={_form_value(name)}" for name in schema.get("required", []))
    elif "multipart/form-data" in body:
        schema = components.get(_ref_name(body["multipart/form-data"]["schema"]["$ref"]), {})
        for name in schema.get("required", []):
            prop = schema.get("properties", {}).get(name, {})
            is_list = prop.get("type") == "array"
            sample = "question.wav" if "/voice/" in path else "document.pdf"
            parts.append(f"-F {name}=@{sample}")
            if is_list:
                parts.append(f"-F {name}=@faq.md")
    url = BASE + path + ("?" + "&".join(query) if query else "")
    parts.append(f'"{url}"')
    return " ".join(parts)


def _form_value(name: str) -> str:
    return {"username": "you@example.com", "password": '"$PASSWORD"'}.get(name, "...")


def _responses(op: Schema) -> list[str]:
    out: list[str] = []
    for status, response in op.get("responses", {}).items():
        if status in {"422", "4XX"}:
            continue
        content = response.get("content", {})
        names = []
        for media, body in content.items():
            schema = body.get("schema", {})
            names.append(f"{type_of(schema) if schema else 'body'} ({media})")
        desc = response.get("description", "")
        out.append(f"`{status}` " + (", ".join(names) if names else desc))
    return out


def _first_paragraph(text: str) -> str:
    return " ".join(text.strip().split("\n\n", 1)[0].split())


def render(contract: Schema, websockets: list[str], permissions: Mapping[tuple[str, str], str]) -> str:
    """The Markdown reference of ``contract`` (deterministic: the same contract gives the same text)."""
    roles = route_roles()
    components = contract.get("components", {}).get("schemas", {})
    by_tag: dict[str, list[tuple[str, str, Schema]]] = {}
    for path, ops in contract["paths"].items():
        for method in METHODS:
            if method in ops:
                tag = (ops[method].get("tags") or ["other"])[0]
                by_tag.setdefault(tag, []).append((method, path, ops[method]))
    info = contract["info"]
    lines = [
        "# HTTP API reference",
        "",
        "<!-- Generated by scripts/gen_api_docs.py from the OpenAPI contract; do not edit by hand. -->",
        "",
        f"{info['title']} {info['version']}: {info.get('summary', '')} OpenAPI {contract['openapi']}; the live "
        "contract is served at `/api/openapi.json` and explored at `/api/docs`. Regenerate this page with "
        "`.venv/bin/python scripts/gen_api_docs.py`; `tests/foundation/test_docs.py` fails when it is stale.",
        "",
        "Every error is RFC 9457 problem JSON (`application/problem+json`, schema `Problem`), including 401, 403, "
        "404, 409, 413, 422 and 429; the per-route lists below leave the shared 422/4XX entries out. " + USAGE_NOTE,
        "",
        "Who may call a route is listed per route (roles from `tests/route_roles.py`, which a test checks "
        "against the running server; the permission is the route's `require(...)` dependency, granted per role "
        "by `control_api/rbac.py`).",
        "",
        "## Contents",
        "",
    ]
    tags = sorted(by_tag)
    lines.extend(f"- [{tag}](#{tag}) ({len(by_tag[tag])})" for tag in tags)
    lines.extend(["- [WebSocket routes](#websocket-routes)", "- [Schemas](#schemas)", ""])
    for tag in tags:
        lines.extend([f"## {tag}", ""])
        for method, path, op in by_tag[tag]:
            key = (method.upper(), path)
            lines.extend([f"### `{method.upper()} {path}`", "", f"**{op.get('summary', '')}.**"])
            if op.get("description"):
                lines[-1] += " " + _first_paragraph(op["description"])
            lines.append("")
            who = roles.get(key)
            permission = permissions.get(key)
            if who or permission:
                text = who or "signed-in users"
                lines.append(f"- Who: {text}" + (f" (permission `{permission}`)" if permission else ""))
            params = [p for p in op.get("parameters", []) if p.get("in") in {"path", "query"}]
            if params:
                rendered = ", ".join(
                    f"`{p['name']}`{'' if p.get('required') else '?'}: {type_of(p.get('schema', {}))}" for p in params
                )
                lines.append(f"- Parameters: {rendered}")
            body = op.get("requestBody", {}).get("content", {})
            for media, content in body.items():
                lines.append(f"- Request: {type_of(content.get('schema', {}))} ({media})")
            responses = _responses(op)
            if responses:
                lines.append("- Responses: " + "; ".join(responses))
            lines.extend(["", "```bash", curl(method, path, op, components), "```", ""])
    lines.extend(
        [
            "## WebSocket routes",
            "",
            "Not part of OpenAPI. Authenticate with `Authorization: Bearer <access token>` or `?access_token=`; "
            "close codes 4401 (unauthenticated), 4403 (forbidden), 4429 (rate limited), 4503 (at capacity). "
            "The voice stream's messages are described in [architecture.md](architecture.md#websocket-voice-api).",
            "",
        ]
    )
    for path in websockets:
        who = roles.get(("WS", path), "signed-in users")
        permission = permissions.get(("WS", path))
        lines.append(f"- `WS {path}`: {who}" + (f" (permission `{permission}`)" if permission else ""))
    lines.extend(["", "## Schemas", ""])
    for name in sorted(components):
        schema = components[name]
        lines.extend([f"### {name}", ""])
        if schema.get("description"):
            lines.extend([_first_paragraph(schema["description"]), ""])
        if "enum" in schema:
            lines.extend(["One of " + type_of(schema) + ".", ""])
            continue
        properties = schema.get("properties", {})
        if not properties:
            continue
        required = set(schema.get("required", []))
        lines.extend(["| field | type | required | meaning |", "|---|---|---|---|"])
        for field, prop in properties.items():
            meaning = " ".join(str(prop.get("description", "")).split()).replace("|", "\\|")
            lines.append(f"| `{field}` | {type_of(prop)} | {'yes' if field in required else ''} | {meaning} |")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def generate() -> str:
    """The text ``docs/api.md`` should have for the current code."""
    contract, websockets, permissions = build_contract()
    return render(contract, websockets, permissions)


def generated_blocks() -> list[tuple[Path, str, str]]:
    """``(file, marker, content)`` of each generated section kept between ``<!-- marker:start/end -->``."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from config.reference import render_markdown
    from control_api.rbac import matrix_markdown

    return [
        (ROOT / "docs" / "configuration.md", "config-reference", render_markdown()),
        (ROOT / "docs" / "ADMIN_GUIDE.md", "role-matrix", matrix_markdown()),
    ]


def refresh_block(text: str, marker: str, content: str) -> str:
    """``text`` with the section between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` replaced."""
    start_tag, end_tag = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    start = text.index(start_tag) + len(start_tag)
    end = text.index(end_tag)
    return text[:start] + "\n" + content.strip() + "\n" + text[end:]


def main(argv: list[str] | None = None) -> int:
    """Write ``docs/api.md``, or with ``--check`` report whether it is up to date."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/api.md is stale; write nothing")
    args = parser.parse_args(argv)
    wanted = {OUTPUT: generate()}
    for path, marker, content in generated_blocks():
        wanted[path] = refresh_block(wanted.get(path, path.read_text()), marker, content)
    stale = [path for path, text in wanted.items() if not path.exists() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is stale: run .venv/bin/python scripts/gen_api_docs.py", file=sys.stderr)
        return 1 if stale else 0
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(wanted[path])
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
