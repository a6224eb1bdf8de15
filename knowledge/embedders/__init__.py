"""Embedders: ``base.py`` defines the interface, one module per backend; ``create_embedder`` picks one by name.

A new backend is one new module with an :class:`Embedder` subclass implementing ``from_options`` and one line
in ``BACKENDS``.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from knowledge.embedders.base import Embedder, normalise_rows

BACKENDS: dict[str, str] = {
    "minilm": "knowledge.embedders.minilm:MiniLMEmbedder",
    "openai": "knowledge.embedders.openai:OpenAIEmbedder",
    "ollama": "knowledge.embedders.ollama:OllamaEmbedder",
}


def create_embedder(
    kind: str,
    *,
    model: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    cache_dir: Path | None = None,
) -> Embedder:
    """Build the embedder named ``kind`` (one of ``BACKENDS``)."""
    try:
        module_name, _, class_name = BACKENDS[kind].partition(":")
    except KeyError:
        raise ValueError(f"unknown embedder {kind!r}; expected one of {sorted(BACKENDS)}") from None
    cls: type[Embedder] = getattr(importlib.import_module(module_name), class_name)
    return cls.from_options(model=model, base_url=base_url, api_key=api_key, cache_dir=cache_dir)


__all__ = ["BACKENDS", "Embedder", "create_embedder", "normalise_rows"]
