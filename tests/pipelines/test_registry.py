"""The backend registries: the settings' choices equal them, every entry loads, nobody else names a backend."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import get_args

import pytest
from pydantic import BaseModel

from config.settings import ASRSettings, LLMSettings, TTSSettings
from pipelines.asr.base import ASRCapabilities
from pipelines.brain.base import BrainCapabilities
from pipelines.registry import BACKENDS, Stage, UnknownBackendError, backend_class, backend_names
from pipelines.tts.base import TTSCapabilities

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SETTINGS: dict[Stage, type[BaseModel]] = {"asr": ASRSettings, "brain": LLMSettings, "tts": TTSSettings}
CAPABILITIES: dict[Stage, type] = {"asr": ASRCapabilities, "brain": BrainCapabilities, "tts": TTSCapabilities}
ALL_NAMES = {name for registry in BACKENDS.values() for name in registry}


@pytest.mark.parametrize("stage", ["asr", "brain", "tts"])
def test_the_settings_offer_exactly_the_registered_backends(stage: Stage) -> None:
    offered = get_args(SETTINGS[stage].model_fields["backend"].annotation)
    assert offered == backend_names(stage)


@pytest.mark.parametrize(("stage", "name"), [(s, n) for s, r in BACKENDS.items() for n in r])
def test_every_registered_backend_loads_and_declares_what_it_can_do(stage: Stage, name: str) -> None:
    cls = backend_class(stage, name)
    assert cls.name == name
    assert type(cls.capabilities) is CAPABILITIES[stage]


def test_an_unknown_backend_names_the_choices() -> None:
    with pytest.raises(UnknownBackendError, match="espeak-ng, flite, openai, piper"):
        backend_class("tts", "festival")


def test_the_offline_defaults_say_so() -> None:
    defaults = {stage: SETTINGS[stage].model_fields["backend"].default for stage in SETTINGS}
    assert backend_class("asr", defaults["asr"]).capabilities.offline
    assert backend_class("brain", defaults["brain"]).capabilities.offline
    assert backend_class("tts", defaults["tts"]).capabilities.offline


def _sources() -> list[Path]:
    return [p for room in ("agent", "pipelines", "control_api") for p in sorted((ROOT / room).rglob("*.py"))]


def _is_backend_value(node: ast.expr) -> bool:
    return isinstance(node, ast.Attribute) and node.attr in ("backend", "name")


def test_no_code_compares_a_backend_name() -> None:
    """Callers ask a backend's capabilities; ``settings.pipeline.asr.backend == "pocketsphinx"`` is refused."""
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            sides = [node.left, *node.comparators]
            named = [s for s in sides if isinstance(s, ast.Constant) and s.value in ALL_NAMES]
            if named and any(_is_backend_value(s) for s in sides):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"backend names compared (ask capabilities instead): {found}"


def test_the_registry_is_the_only_backend_lookup() -> None:
    """No second ``name -> "module:Class"`` table of stage backends outside ``pipelines/registry.py``."""
    target = re.compile(r"^pipelines\.(asr|brain|tts)\.\w+:\w+$")
    found = []
    for path in _sources():
        if path == ROOT / "pipelines" / "registry.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and target.match(node.value):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not found, f"backend classes named outside pipelines/registry.py: {found}"
