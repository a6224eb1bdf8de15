"""docker-compose.yml and the README stay consistent with the code (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.loader import known_variables

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def test_compose_is_production_shaped() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "postgres", "redis", "weaviate", "ollama", "livekit", "livekit-sip"} <= set(services)
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no health check"
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert dependency in services
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    for name in ("api", "worker"):
        assert any("/var/lib/voxdesk" in v for v in services[name]["volumes"])


def test_compose_uses_only_real_settings() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    env = compose["x-voxdesk-env"]
    known = known_variables()
    assert sorted(set(env) - known) == []


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text()[:3000]
    assert "./scripts/run" in head
    assert "./scripts/test" in head
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()
