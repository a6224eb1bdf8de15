"""The integrations API: CRUD, secrets never returned nor stored in clear, audit, roles, SSRF at save."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from config import Settings
from control_api.integrations.errors import ConfigError, DestinationRefusedError
from control_api.integrations.http import GuardedHttp
from control_api.integrations.secrets import SecretBox
from tests.control_api.conftest import Accounts, sign_in_everyone
from tests.integrations.conftest import FRESHDESK_KEY, WEBHOOK_SECRET, make_client
from tests.integrations.standins import FreshdeskStandIn, WebhookReceiver

pytestmark = pytest.mark.integration


def _webhook(url: str, name: str = "crm hook") -> dict[str, object]:
    return {"name": name, "type": "webhook", "config": {"url": url}, "secrets": {"signing_secret": WEBHOOK_SECRET}}


def test_crud_secrets_never_returned_and_audited(
    client: TestClient, accounts: Accounts, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    admin = accounts.headers("admin")
    r = client.post("/api/integrations", json=_webhook(receiver.url + "/hooks/voxdesk"), headers=admin)
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["type"] == "webhook" and created["secrets_set"] == ["signing_secret"]
    assert WEBHOOK_SECRET not in r.text and WEBHOOK_SECRET[6:] not in r.text

    listing = client.get("/api/integrations", headers=accounts.headers("supervisor"))
    assert listing.status_code == 200 and listing.json()["count"] == 1
    assert WEBHOOK_SECRET[6:] not in listing.text
    # Supervisors see, admins configure.
    denied = client.post(
        "/api/integrations", json=_webhook("http://127.0.0.1:9/x", "b"), headers=accounts.headers("supervisor")
    )
    assert denied.status_code == 403

    new_secret = "whsec_" + "A" * 44
    r = client.put(
        f"/api/integrations/{created['id']}",
        json={"secrets": {"signing_secret": new_secret}, "enabled": False},
        headers=admin,
    )
    assert r.status_code == 200, r.text
    assert r.json()["enabled"] is False and new_secret not in r.text

    # At rest: neither secret is in the database file in clear.
    raw = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("voxdesk.db*"))
    assert WEBHOOK_SECRET[6:].encode() not in raw and new_secret[6:].encode() not in raw

    assert client.delete(f"/api/integrations/{created['id']}", headers=admin).status_code == 204
    assert client.get(f"/api/integrations/{created['id']}/runs", headers=admin).status_code == 404
    audit = client.get("/api/audit", params={"action_prefix": "integrations."}, headers=admin).json()
    actions = [e["action"] for e in audit["items"]]
    assert {"integrations.create", "integrations.update", "integrations.delete"} <= set(actions)
    assert all(WEBHOOK_SECRET[6:] not in str(e["detail"]) for e in audit["items"])


def test_duplicate_name_and_bad_config_are_problems(
    client: TestClient, accounts: Accounts, freshdesk: FreshdeskStandIn
) -> None:
    admin = accounts.headers("admin")
    body = {"name": "helpdesk", "type": "freshdesk", "config": {"base_url": freshdesk.url}, "secrets": {}}
    r = client.post("/api/integrations", json=body, headers=admin)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")
    assert "api_key" in r.json()["detail"]
    body["secrets"] = {"api_key": FRESHDESK_KEY}
    assert client.post("/api/integrations", json=body, headers=admin).status_code == 201
    r = client.post("/api/integrations", json=body, headers=admin)
    assert r.status_code == 409 and r.json()["type"].endswith("/conflict")
    r = client.post("/api/integrations", json={**body, "name": "x", "type": "zendesk"}, headers=admin)
    assert r.status_code == 422


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata (link-local)
        "http://127.0.0.1:8080/hook",  # loopback
        "http://localhost:8080/hook",  # a DNS name that resolves to loopback
        "http://10.1.2.3/hook",  # private
        "http://[::1]:8080/hook",  # IPv6 loopback
        "http://[::ffff:127.0.0.1]/hook",  # IPv4-mapped IPv6
    ],
)
def test_private_destinations_are_refused_at_save(tmp_path: Path, url: str) -> None:
    with make_client(tmp_path, allowed_private_hosts="") as client:
        accounts = sign_in_everyone(client)
        r = client.post("/api/integrations", json=_webhook(url), headers=accounts.headers("admin"))
        assert r.status_code == 422, r.text
        assert r.json()["type"].endswith("/destination-refused")


async def test_private_destinations_are_refused_at_send_time() -> None:
    http = GuardedHttp(allowed_private_hosts=())
    try:
        with pytest.raises(DestinationRefusedError):
            await http.request("POST", "http://127.0.0.1:9/hook", content=b"{}")
        with pytest.raises(DestinationRefusedError):
            await http.request("GET", "http://localhost:9/")
    finally:
        await http.aclose()


def test_secret_box_rotation() -> None:
    old, new = "o" * 40, "n" * 40
    value = {"api_key": "plain-api-key-123"}
    sealed = SecretBox(old).seal(value)
    assert sealed is not None and "plain-api-key" not in sealed
    rotated = SecretBox(new, [old])
    assert rotated.open(sealed) == value
    assert SecretBox(new).open(rotated.rotate(sealed)) == value
    with pytest.raises(ConfigError):
        SecretBox(new).open(sealed)


def test_production_refuses_the_placeholder_key(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="VOXDESK_INTEGRATIONS__SECRET_KEY"):
        Settings(_env_file=None, env="production", data_dir=tmp_path, auth={"secret_key": "s" * 40})  # type: ignore[call-arg, arg-type]
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        env="production",
        data_dir=tmp_path,
        auth={"secret_key": "s" * 40},  # type: ignore[arg-type]
        integrations={"secret_key": "i" * 40},  # type: ignore[arg-type]
    )
    assert settings.integrations.secret_key.get_secret_value() == "i" * 40
