"""How well the extractive brain matches caller turns to the operator's custom API tools, and fills their arguments.

Runs the product's own rule (``pipelines.brain.extractive.pick_tool`` over ``ExtractiveBackend.tool_scores`` with
the knowledge service's embedder, and ``pipelines.brain.custom_tools.fill``) on the tools of
``benchmarks/custom_tools/tools.json`` beside the four built-in ones, at a range of thresholds:

- the tuning set: ``benchmarks/custom_tools/dev.json`` (positives; built-in tool phrases that must stay built-in)
  and the team's knowledge questions (``benchmarks/kb/questions.jsonl``) as turns that must go to the search;
- the held-out set: ``benchmarks/custom_tools/heldout_positive.json`` and, as turns that must go to the search,
  every question of ``benchmarks/heldout/*/questions.json`` (written by others; never tuned on).

Prints JSON: per set and threshold, tool recall (positives to the right tool), false triggers (non-tool turns sent
to a custom tool, listed at the product's threshold), and argument accuracy (positives whose filled arguments are
exactly the expected ones). Runnable alone: ``.venv/bin/python -m benchmarks.custom_tool_matching``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.product_kb import demo_settings, service_embedder
from pipelines.brain import custom_tools as custom
from pipelines.brain.extractive import ExtractiveBackend, pick_tool
from pipelines.options import BrainOptions
from pipelines.tools import TOOLS, ToolSpec

HERE = Path(__file__).resolve().parent
SETS = HERE / "custom_tools"


def load_tools() -> list[ToolSpec]:
    """The benchmark's custom tools as the voice server builds them (``agent.calls.tools.CustomApiCaller``)."""
    return [
        ToolSpec(
            name=t["name"],
            description=t["description"],
            examples=tuple(t.get("examples", ())),
            parameters=dict(t["parameters"].get("properties", {})),
            required=tuple(t["parameters"].get("required", ())),
        )
        for t in json.loads((SETS / "tools.json").read_text())
    ]


def _kb_questions() -> list[str]:
    lines = (HERE / "kb" / "questions.jsonl").read_text().splitlines()
    return [json.loads(line)["question"] for line in lines if line.strip()]


def _heldout_questions() -> list[str]:
    paths = sorted((HERE / "heldout").glob("*/questions.json"))
    return [q["text"] for path in paths for q in json.loads(path.read_text())]


async def _scores(backend: ExtractiveBackend, tools: list[ToolSpec], texts: list[str]) -> list[dict[str, float]]:
    return [await backend.tool_scores(text, tools) for text in texts]


def _report(
    name: str,
    positives: list[dict[str, Any]],
    pos_scores: list[dict[str, float]],
    negatives: list[tuple[str, str]],
    neg_scores: list[dict[str, float]],
    tools: list[ToolSpec],
    thresholds: list[float],
    product: float,
    builtin: float,
) -> dict[str, Any]:
    available = [t.name for t in TOOLS] + [t.name for t in tools]
    custom_names = {t.name for t in tools}
    by_name = {t.name: t for t in tools}
    rows = []
    for threshold in thresholds:

        def pick(s: dict[str, float], threshold: float = threshold) -> str:
            return pick_tool(s, available, builtin, custom_names=custom_names, custom_threshold=threshold)

        hits = [pick(s) == p["tool"] for p, s in zip(positives, pos_scores, strict=True)]
        args_ok = [
            hit and custom.fill(by_name[p["tool"]], p["text"])[0] == p["arguments"]
            for p, hit in zip(positives, hits, strict=True)
        ]
        picked = [(text, expected, pick(s)) for (text, expected), s in zip(negatives, neg_scores, strict=True)]
        wrong = [(text, got) for text, expected, got in picked if got != expected and got in custom_names]
        row: dict[str, Any] = {
            "threshold": threshold,
            "tool_recall": round(sum(hits) / len(hits), 3),
            "arguments_exact": round(sum(args_ok) / len(args_ok), 3),
            "false_triggers": len(wrong),
        }
        if abs(threshold - product) < 1e-9:
            row["false_trigger_turns"] = wrong
            row["missed"] = [p["text"] for p, hit in zip(positives, hits, strict=True) if not hit]
        rows.append(row)
    return {"set": name, "positives": len(positives), "negatives": len(negatives), "by_threshold": rows}


async def main(threshold: float | None) -> dict[str, Any]:
    """Score both sets at a range of custom-tool thresholds (the product's is ``CUSTOM_TOOL_THRESHOLD``).

    Built-in tools keep their own threshold (``BrainOptions().tool_threshold``).
    """
    product = custom.CUSTOM_TOOL_THRESHOLD if threshold is None else threshold
    builtin = BrainOptions().tool_threshold
    with tempfile.TemporaryDirectory() as tmp:
        embedder = service_embedder(demo_settings(Path(tmp)))
        await embedder.warm()
        backend = ExtractiveBackend(BrainOptions(), embedder)
        tools = load_tools()
        thresholds = sorted({round(0.40 + 0.05 * i, 2) for i in range(8)} | {product})
        dev = json.loads((SETS / "dev.json").read_text())
        held = json.loads((SETS / "heldout_positive.json").read_text())
        dev_neg = [(q, "search_knowledge_base") for q in _kb_questions()] + [
            (n["text"], n["tool"]) for n in dev["negative_builtin"]
        ]
        held_neg = [(q, "search_knowledge_base") for q in _heldout_questions()]
        reports = []
        for name, positives, negatives in (
            ("dev", dev["positive"], dev_neg),
            ("heldout", held["positive"], held_neg),
        ):
            pos_scores = await _scores(backend, tools, [p["text"] for p in positives])
            neg_scores = await _scores(backend, tools, [n[0] for n in negatives])
            reports.append(
                _report(name, positives, pos_scores, negatives, neg_scores, tools, thresholds, product, builtin)
            )
    return {
        "custom_tool_threshold": product,
        "builtin_tool_threshold": builtin,
        "embedder": type(embedder).__name__,
        "sets": reports,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threshold", type=float, default=None, help="the threshold whose mistakes are listed")
    report = asyncio.run(main(parser.parse_args().threshold))
    print(json.dumps(report, indent=2))
