"""The custom API builder: sandboxed templates, dry runs, and real calls as an agent tool through the SSRF guard."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from control_api.db.models import IntegrationRun
from control_api.integrations.http import GuardedHttp
from control_api.routes.integrations import secret_box
from control_api.services import calls as call_service
from control_api.services import integrations as service
from tests.control_api.conftest import Accounts, sign_in_everyone
from tests.integrations.conftest import make_client
from tests.integrations.standins import ORDERS_TOKEN as TOKEN
from tests.integrations.standins import OrdersApi

pytestmark = pytest.mark.integration


def config(base: str) -> dict[str, Any]:
    return {
        "tool": {
            "name": "check_order_status",
            "description": "Look up the status of the caller's order by its order number.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string", "pattern": "^[0-9]{1,10}$"}},
                "required": ["order_id"],
            },
            "examples": ["where is my order", "check my order status"],
        },
        "method": "POST",
        "url": base + "/v1/orders/{{ args.order_id | urlencode }}/status?lang=en",
        "headers": {"Authorization": "Bearer {{ secrets.token }}"},
        "body": '{"order": {{ args.order_id | tojson }}, "caller": {{ caller.name | tojson }}, '
        '"summary": {{ call.summary | tojson }}}',
        "response": {"status": "/order/status", "item": "order.items.0.name", "eta": "/eta~1date", "gone": "/x/y"},
        "say": "Your order {{ args_id | default('') }}is {{ status }}: {{ item }}, arriving {{ eta }}.",
        "timeout_secs": 2,
        "test_arguments": {"order_id": "1234"},
    }


def _create(client: TestClient, admin: dict[str, str], body_config: dict[str, Any]) -> Any:
    body = {"name": "orders", "type": "custom_api", "config": body_config, "secrets": {"token": TOKEN}}
    return client.post("/api/integrations", json=body, headers=admin)


def test_dry_run_renders_without_sending(client: TestClient, accounts: Accounts, orders: OrdersApi) -> None:
    admin = accounts.headers("admin")
    sessions = client.app.state.voxdesk.sessions  # type: ignore[attr-defined]

    async def a_call() -> str:
        async with sessions() as session:
            call = await call_service.create_call(session, channel="webrtc", caller_name="Asha")
            await call_service.append_turn(
                session, call.id, seq=1, role="caller", text="Where is my parcel?", score_sentiment=False
            )
        return call.id

    assert client.portal is not None
    call_id = client.portal.call(a_call)
    r = client.post(
        "/api/integrations/dry-run",
        json={"config": config(orders.url), "arguments": {"order_id": "1234"}, "call_id": call_id},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    result = r.json()
    assert result["ok"] is True and result["tool"]["name"] == "check_order_status"
    request = result["request"]
    assert request["method"] == "POST" and request["url"] == orders.url + "/v1/orders/1234/status?lang=en"
    assert request["headers"]["Authorization"] == "Bearer ‹secret token›"  # secrets are never shown
    body = json.loads(request["body"])
    assert body == {
        "order": "1234",
        "caller": "Asha",
        "summary": 'The caller asked 1 question. Not answered: "Where is my parcel?".',
    }
    assert orders.requests == []  # nothing was sent
    # Arguments outside the schema are refused, not rendered.
    r = client.post(
        "/api/integrations/dry-run",
        json={"config": config(orders.url), "arguments": {"order_id": "1/../admin"}},
        headers=admin,
    )
    assert r.json()["ok"] is False and "not valid" in r.json()["error"]
    # The stored integration dry-runs the same way.
    created = _create(client, admin, config(orders.url))
    assert created.status_code == 201, created.text
    assert "token" not in str(created.json()["config"]) or "secrets.token" in str(created.json()["config"])
    r = client.post(
        f"/api/integrations/{created.json()['id']}/dry-run", json={"arguments": {"order_id": "9"}}, headers=admin
    )
    assert r.json()["request"]["url"].endswith("/v1/orders/9/status?lang=en")
    assert orders.requests == []


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("url", "{{ args.host }}/v1/orders", "must start with http"),
        ("url", "http://{{ args.host }}/v1", "must be literal"),
        ("body", "{{ args.order_id ", "not a valid template"),
        ("method", "TRACE", "config.method"),
        (
            "tool",
            {"name": "create_ticket", "description": "Shadow the built-in tool.", "parameters": {"type": "object"}},
            "built-in",
        ),
        (
            "tool",
            {
                "name": "bad_schema",
                "description": "A broken parameter schema.",
                "parameters": {"type": "object", "properties": 3},
            },
            "JSON schema",
        ),
    ],
)
def test_invalid_configs_are_refused_at_save(
    client: TestClient, accounts: Accounts, orders: OrdersApi, field: str, value: Any, message: str
) -> None:
    r = _create(client, accounts.headers("admin"), {**config(orders.url), field: value})
    assert r.status_code == 422 and message in r.json()["detail"], r.text


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
        "{{ args.update({'order_id': 'x'}) }}",
    ],
)
def test_templates_are_sandboxed(client: TestClient, accounts: Accounts, orders: OrdersApi, template: str) -> None:
    r = client.post(
        "/api/integrations/dry-run",
        json={"config": {**config(orders.url), "body": template}, "arguments": {"order_id": "1"}},
        headers=accounts.headers("admin"),
    )
    assert r.status_code == 200 and r.json()["ok"] is False, r.text
    assert "body template" in r.json()["error"]


def test_the_tool_calls_the_api_and_speaks_the_mapped_values(
    client: TestClient, accounts: Accounts, orders: OrdersApi
) -> None:
    r = _create(client, accounts.headers("admin"), config(orders.url))
    assert r.status_code == 201, r.text
    state = client.app.state.voxdesk  # type: ignore[attr-defined]

    async def invoke(order_id: str, allowed: tuple[str, ...] = ("127.0.0.1",)) -> Any:
        tools = service.Toolkit(box=secret_box(state), http=GuardedHttp(allowed_private_hosts=allowed))
        async with state.sessions() as session:
            call = await call_service.create_call(session, channel="webrtc", caller_name="Asha")
            return await service.invoke_tool(
                session, tools, name="check_order_status", arguments={"order_id": order_id}, call_id=call.id
            )

    assert client.portal is not None
    result = client.portal.call(invoke, "1234")
    assert result.ok, result.error
    assert result.values == {"status": "shipped", "item": "Router X2", "eta": "Friday", "gone": None}
    assert result.say == "Your order is shipped: Router X2, arriving Friday."
    [sent] = orders.requests
    assert sent["headers"]["Authorization"] == f"Bearer {TOKEN}" and sent["query"] == {"lang": "en"}
    assert sent["body"]["order"] == "1234" and sent["body"]["caller"] == "Asha"
    missing = client.portal.call(invoke, "404")
    assert not missing.ok and missing.status == 404 and missing.say is None
    # The SSRF rule holds at call time: the same tool without the loopback exemption is refused before sending.
    refused = client.portal.call(invoke, "1", ())
    assert not refused.ok and "private" in (refused.error or "") and len(orders.requests) == 2

    async def runs() -> list[IntegrationRun]:
        async with state.sessions() as session:
            return list((await session.execute(select(IntegrationRun))).scalars())

    recorded = client.portal.call(runs)
    assert [r.status for r in recorded].count("succeeded") == 1 and len(recorded) == 3
    assert all(r.action == "tool:check_order_status" and TOKEN not in str(r.request) for r in recorded)
    r = client.post(f"/api/integrations/{recorded[0].integration_id}/test", headers=accounts.headers("admin"))
    assert r.json()["ok"] is True and len(orders.requests) == 3


def test_custom_tools_lists_enabled_tools(tmp_path: Path, orders: OrdersApi) -> None:
    with make_client(tmp_path) as client:
        admin = sign_in_everyone(client).headers("admin")
        created = _create(client, admin, config(orders.url)).json()
        state = client.app.state.voxdesk  # type: ignore[attr-defined]

        async def tools() -> list[dict[str, Any]]:
            async with state.sessions() as session:
                return await service.custom_tools(session)

        assert client.portal is not None
        [tool] = client.portal.call(tools)
        assert tool["name"] == "check_order_status" and tool["parameters"]["required"] == ["order_id"]
        client.put(f"/api/integrations/{created['id']}", json={"enabled": False}, headers=admin)
        assert client.portal.call(tools) == []
