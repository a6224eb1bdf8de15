"""Knowledge room: parse company documents, chunk, embed, store and retrieve grounded passages.

Pipeline: bytes → :mod:`knowledge.sniff` (type from content, zip-bomb guard) → :mod:`knowledge.parsers`
(one module per format) → :mod:`knowledge.cleaning` → :mod:`knowledge.chunking` (structure-aware,
token-bounded, overlap, headings carried) → :mod:`knowledge.embedders` (MiniLM on onnxruntime by default;
OpenAI- or Ollama-served) → :mod:`knowledge.stores` (embedded HNSW + BM25 by default; Weaviate) →
:mod:`knowledge.retrieval` (hybrid, reciprocal rank fusion from :mod:`knowledge.fusion`, optional cross-encoder
rerank, calibrated threshold, citations). Stores are indexes: the control plane's database keeps every chunk
and fills a store with ``VectorStore.restore`` on start. Parsing of untrusted files runs in a memory- and
time-capped child process (:mod:`knowledge.ingest`).

Stable interfaces other rooms rely on:

- ``await KnowledgeBase.retrieve(question, *, top_k=5) -> Retrieval``
  (:class:`knowledge.types.Retrieval`: ``found``, ``passages`` best first, ``latency_ms`` with the query
  embedding included, ``top_score``). Each :class:`knowledge.types.Passage` has ``text``, ``score``,
  ``document_id``, ``chunk_id``, ``citation`` (as ``pipelines.contracts.Passage``) plus ``title``, ``heading``
  and ``page``. The control plane's ``KnowledgeService.retrieve(question, *, top_k, call_id)`` adds logging to
  ``rag_queries``; the agent wraps it into ``pipelines.contracts.Retriever``.
- ``await Embedder.embed(texts) -> list[list[float]]``: unit-normalised vectors
  (``pipelines.contracts.TextEmbedder``), e.g. ``KnowledgeService.embedder`` for tool matching.
- ``await KnowledgeService.corpus_text() -> str``: every ready document's text (a domain language model).
- ``VectorStore`` (:mod:`knowledge.stores.base`): the store interface (``add``, ``delete_document``,
  ``restore``, the three searches); every backend passes ``tests/knowledge/test_store_conformance.py``.

This package imports nothing of ours but ``config`` (and only for types); composition roots pass plain values.
"""
