"""Embedders: the offline MiniLM model for real; OpenAI and Ollama against their documented request shapes."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from knowledge.embedders import create_embedder
from knowledge.embedders.minilm import MiniLMEmbedder
from knowledge.embedders.ollama import OllamaEmbedder
from knowledge.embedders.openai import OpenAIEmbedder
from knowledge.errors import EmbeddingError

pytestmark = pytest.mark.integration


async def test_minilm_vectors_are_unit_and_meaningful() -> None:
    embedder = MiniLMEmbedder()
    vectors = np.asarray(
        await embedder.embed(
            ["How much is the late payment fee?", "What do you charge if I pay my bill late?", "Reset the router"]
        )
    )
    assert vectors.shape == (3, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2
    assert await embedder.embed([]) == []
    assert embedder.count_tokens("What is the late payment fee?") == 7
    assert embedder.backend in ("onnx-int8", "onnx", "torch")


async def test_minilm_gives_a_text_the_same_vector_whatever_order_the_texts_come_in() -> None:
    """Views are embedded in chunk-id order, and ids are random per ingestion: same texts, same vectors."""
    embedder = MiniLMEmbedder()
    texts = [f"Sentence number {n} about the {w} plan." for n in range(12) for w in ("basic", "plus", "pro")]
    texts += [f"Call us on day {n} of the month." for n in range(40)]
    shuffled = texts[::-1][1::2] + texts[::-1][0::2]
    first = await embedder.embed_array(texts)
    second = await embedder.embed_array(shuffled)
    by_text = {t: v for t, v in zip(shuffled, second, strict=True)}
    assert all(np.array_equal(v, by_text[t]) for t, v in zip(texts, first, strict=True))


async def test_minilm_loads_once_per_process() -> None:
    first, second = MiniLMEmbedder(), MiniLMEmbedder(cache_dir=Path("/nonexistent"))
    assert first.load() is second.load()


def _openai_handler(calls: list[httpx.Request], *, fail_first: int = 0) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) <= fail_first:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        body = json.loads(request.content)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i + 1), 0.0, 0.0]}
            for i in range(len(body["input"]))
        ]
        return httpx.Response(200, json={"object": "list", "data": list(reversed(data)), "model": body["model"]})

    return httpx.MockTransport(handler)


async def test_openai_request_shape_order_and_retry() -> None:
    calls: list[httpx.Request] = []
    embedder = OpenAIEmbedder(
        model="text-embedding-3-small",
        base_url="https://llm.example/v1",
        api_key="sk-test",
        transport=_openai_handler(calls, fail_first=1),
    )
    vectors = await embedder.embed(["a", "b"])
    assert len(calls) == 2  # one 503, one retry
    request = calls[-1]
    assert request.method == "POST" and str(request.url) == "https://llm.example/v1/embeddings"
    assert request.headers["authorization"] == "Bearer sk-test"
    assert json.loads(request.content) == {"model": "text-embedding-3-small", "input": ["a", "b"]}
    assert vectors == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]  # unit-normalised, back in input order
    assert embedder.dimension == 3
    await embedder.close()


async def test_openai_refusal_is_not_retried() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(401, json={"error": {"message": "bad key"}})

    embedder = OpenAIEmbedder(api_key="wrong", transport=httpx.MockTransport(handler))
    with pytest.raises(EmbeddingError, match="refused"):
        await embedder.embed(["a"])
    assert len(calls) == 1


async def test_ollama_request_shape() -> None:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        body = json.loads(request.content)
        return httpx.Response(200, json={"model": body["model"], "embeddings": [[0.0, 2.0] for _ in body["input"]]})

    embedder = OllamaEmbedder(
        model="nomic-embed-text", base_url="http://ollama:11434", transport=httpx.MockTransport(handler)
    )
    vectors = await embedder.embed(["x", "y", "z"])
    assert str(calls[0].url) == "http://ollama:11434/api/embed"
    assert json.loads(calls[0].content) == {"model": "nomic-embed-text", "input": ["x", "y", "z"]}
    assert vectors == [[0.0, 1.0]] * 3


async def test_unreachable_server_is_a_retryable_embedding_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    embedder = OllamaEmbedder(transport=httpx.MockTransport(handler))
    with pytest.raises(EmbeddingError) as info:
        await embedder.embed(["x"])
    assert info.value.retryable


def test_factory_picks_backends_by_name() -> None:
    assert isinstance(create_embedder("minilm"), MiniLMEmbedder)
    assert isinstance(create_embedder("openai", model="m", api_key="k"), OpenAIEmbedder)
    assert isinstance(create_embedder("ollama"), OllamaEmbedder)
    with pytest.raises(ValueError, match="unknown embedder"):
        create_embedder("word2vec")


async def test_remote_embedders_batch_large_inputs_in_order() -> None:
    calls: list[httpx.Request] = []
    embedder = OpenAIEmbedder(model="m", base_url="https://llm.example/v1", transport=_openai_handler(calls))
    texts = [f"text {i}" for i in range(OpenAIEmbedder.batch_size + 2)]
    vectors = await embedder.embed(texts)
    sizes = [len(json.loads(request.content)["input"]) for request in calls]
    assert sizes == [OpenAIEmbedder.batch_size, 2]
    assert len(vectors) == len(texts)
    assert "authorization" not in calls[0].headers  # no key configured: no header sent
    await embedder.close()


@pytest.mark.integration
def test_processes_starting_together_share_one_onnx_export(tmp_path: Path) -> None:
    """Two processes on an empty cache: one exports, the other waits for it; neither falls back to torch."""
    import subprocess
    import sys

    from knowledge.embedders.minilm import default_model_dir

    model = tmp_path / "model"  # its shared cache is tmp_path/.onnx-cache, empty
    model.mkdir()
    for item in default_model_dir().iterdir():
        (model / item.name).symlink_to(item)
    code = (
        "import sys; from pathlib import Path; from knowledge.embedders.minilm import _find_or_export; "
        "print(_find_or_export(Path(sys.argv[1]), None, 'int8'))"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", code, str(model)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err.decode()[-2000:]
    paths = {out.decode().strip().splitlines()[-1] for out, _ in outputs}
    assert len(paths) == 1
    (path,) = paths
    assert Path(path).parent == tmp_path / ".onnx-cache" and Path(path).stat().st_size > 10_000_000
