"""Nothing dead: every declared setting is read by code, every direct dependency is imported or named why not."""

from __future__ import annotations

import ast
import importlib
import tomllib
from collections.abc import Iterator
from functools import cache
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from prometheus_client import REGISTRY
from pydantic import BaseModel

from config.reference import render_markdown
from config.settings import Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
# The code that runs (or measures) the product; tests and config/ itself do not count as readers.
CODE_ROOTS = ("agent", "pipelines", "knowledge", "control_api", "benchmarks", "scripts")

# Dependencies the product needs without importing them by name; each is a runtime requirement of the code.
NOT_IMPORTED_BUT_NEEDED = {
    "aiosqlite": "SQLAlchemy driver named in the default sqlite+aiosqlite URL",
    "psycopg": "SQLAlchemy driver named in postgresql+psycopg URLs",
    "email-validator": "pydantic's EmailStr (control_api/schemas)",
    "python-multipart": "FastAPI's Form() parsing (the OAuth2 token route)",
    "uvloop": "uvicorn's default event loop when installed",
    "scipy": "bm25s builds its sparse index with scipy.sparse when importable",
    "onnx": "the MiniLM ONNX export (torch.onnx, onnxruntime.quantization)",
    "defusedxml": "openpyxl parses uploaded spreadsheets through defusedxml when importable",
    "lxml-html-clean": "justext (under trafilatura) imports lxml.html.clean, split out of lxml",
}


def _python_files() -> Iterator[Path]:
    for root in CODE_ROOTS:
        yield from (ROOT / root).rglob("*.py")


@cache
def _trees() -> tuple[ast.Module, ...]:
    return tuple(ast.parse(path.read_text(), filename=str(path)) for path in _python_files())


def _attributes_read() -> tuple[set[str], set[str]]:
    """Attribute names accessed anywhere, and names of objects dumped whole with ``.model_dump()``."""
    names: set[str] = set()
    dumped: set[str] = set()
    for tree in _trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
                if node.attr == "model_dump" and isinstance(node.value, ast.Attribute):
                    dumped.add(node.value.attr)
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "getattr"
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
            ):
                names.add(node.args[1].value)
    return names, dumped


def _settings_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _settings_paths(annotation, (*prefix, name))
        else:
            yield (*prefix, name)


def test_every_setting_is_read_by_code() -> None:
    names, dumped = _attributes_read()
    unread = [
        "VOXDESK_" + "__".join(part.upper() for part in path)
        for path in _settings_paths(Settings)
        if path[-1] not in names and not (len(path) > 1 and path[-2] in dumped)
    ]
    assert unread == [], f"settings nothing reads (remove them, or wire them in): {unread}"


def test_config_reference_lists_no_removed_setting() -> None:
    reference = render_markdown()
    # VOXDESK_TELEPHONY__ came back with the SIP endpoint (issue 17), read by agent/transports/sip.
    for gone in ("VOXDESK_ALERTS__", "CORS_ORIGINS", "DEMO_DIR"):
        assert gone not in reference


def _imported_modules() -> set[str]:
    modules: set[str] = set()
    for root in (*CODE_ROOTS, "config"):
        for path in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    modules.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    modules.add(node.module.split(".")[0])
    return modules


def test_every_direct_dependency_is_imported() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    distributions = [canonicalize_name(Requirement(line).name) for line in declared]
    by_distribution: dict[str, set[str]] = {}
    for module, owners in packages_distributions().items():
        for owner in owners:
            by_distribution.setdefault(canonicalize_name(owner), set()).add(module)
    imported = _imported_modules()
    unused = [
        name
        for name in distributions
        if name not in NOT_IMPORTED_BUT_NEEDED and not (by_distribution.get(name, set()) & imported)
    ]
    assert unused == [], f"dependencies nothing imports (remove them, or say why they are needed): {unused}"
    stale = sorted(set(NOT_IMPORTED_BUT_NEEDED) - set(distributions))
    assert stale == [], f"NOT_IMPORTED_BUT_NEEDED names packages that are no longer dependencies: {stale}"


def test_each_latency_is_one_histogram() -> None:
    for module in ("agent.metrics", "control_api.metrics", "pipelines.metrics"):
        importlib.import_module(module)  # each registers its metrics in the default registry
    voice_to_voice = [
        family.name
        for family in REGISTRY.collect()
        if family.type == "histogram" and "voice-to-voice" in family.documentation.lower()
    ]
    assert voice_to_voice == ["voxdesk_pipeline_turn_latency_seconds"]


def test_routes_build_audit_actors_through_deps_only() -> None:
    # One rule for who did it and from where (client_ip believes forwarded headers only from trusted proxies).
    copies = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "control_api" / "routes").rglob("*.py")
        if "audit.Actor(" in path.read_text() or "request.client.host" in path.read_text()
    ]
    assert copies == [], f"routes building their own audit actor instead of control_api.deps.actor_for: {copies}"
