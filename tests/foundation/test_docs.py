"""The docs stay true to the code: generated pages match their sources, links resolve, the README stays short."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
REGENERATE = "run `.venv/bin/python scripts/gen_api_docs.py`"
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_api_docs", ROOT / "scripts" / "gen_api_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_api_reference_matches_the_openapi_contract() -> None:
    generator = _generator()
    expected = generator.generate()
    assert (ROOT / "docs" / "api.md").read_text() == expected, f"docs/api.md is stale: {REGENERATE}"


def test_generated_sections_match_their_sources() -> None:
    generator = _generator()
    for path, marker, content in generator.generated_blocks():
        text = path.read_text()
        assert generator.refresh_block(text, marker, content) == text, f"{path.name} {marker} is stale: {REGENERATE}"


def test_every_api_route_is_in_the_reference() -> None:
    generator = _generator()
    contract, websockets, _ = generator.build_contract()
    text = (ROOT / "docs" / "api.md").read_text()
    for path, operations in contract["paths"].items():
        for method in operations:
            if method in generator.METHODS:
                assert f"### `{method.upper()} {path}`" in text
    for path in websockets:
        assert f"`WS {path}`" in text


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if not (doc.parent / path).exists():
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)} links to missing files: {broken}"


def test_readme_is_a_front_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    head = readme[:3000]
    assert "./scripts/run" in head
    assert "./scripts/test" in head
    for section in ("## Headline figures", "## Configuration", "## What was not exercised here"):
        assert section in readme
    for guide in ("ADMIN_GUIDE.md", "DEPLOYMENT_RUNBOOK.md", "DISASTER_RECOVERY.md", "ONBOARDING_GUIDE.md", "api.md"):
        assert f"docs/{guide}" in readme
