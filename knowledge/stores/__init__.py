"""Vector stores: ``base.py`` defines the interface, one module per backend; ``create_store`` picks one by name."""

from __future__ import annotations

from knowledge.stores.base import RestoreReport, VectorStore

BACKENDS: dict[str, str] = {
    "embedded": "knowledge.stores.embedded:EmbeddedStore",
    "weaviate": "knowledge.stores.weaviate:WeaviateStore",
}

__all__ = ["BACKENDS", "RestoreReport", "VectorStore"]
