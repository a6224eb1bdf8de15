"""docker-compose.yml and the README stay consistent with the code (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from config.loader import known_variables
from config.reference import render_markdown

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


def test_readme_configuration_reference_is_generated() -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- config-reference:start -->") + len("<!-- config-reference:start -->")
    end = readme.index("<!-- config-reference:end -->")
    assert readme[start:end].strip() == render_markdown().strip(), (
        "README configuration reference is stale: run `voxdesk config-reference` and paste it between the markers"
    )


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text()[:3000]
    assert "./scripts/run" in head
    assert "./scripts/test" in head
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_readme_role_matrix_is_generated() -> None:
    from control_api.rbac import matrix_markdown

    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- role-matrix:start -->") + len("<!-- role-matrix:start -->")
    end = readme.index("<!-- role-matrix:end -->")
    assert readme[start:end].strip() == matrix_markdown().strip(), "README role matrix is stale"
