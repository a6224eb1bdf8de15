"""How often the caller-turn handoff triggers fire where they should and where they should not (typed turns).

Runs the product's rule (``agent.calls.handoff.caller_turn_trigger`` with the default policy: person-words, then
strong negative sentiment of a turn that asks nothing) on

- the development set ``benchmarks/handoff_triggers/dev.json`` (requests for a person and upset callers, which
  must hand over; person-words naming a third party and calm questions about unpleasant subjects, which must not)
  and the team's question files (``benchmarks/kb/*.jsonl``, ``benchmarks/asr_eval/questions.json``: none asks for
  a person). The rules were chosen on these.
- the held-out questions (``benchmarks/heldout/*/questions.json``, written by others, never tuned on): none asks
  for a person, so every handoff there is a caller handed over instead of answered;
- the held-out sentiment set ``benchmarks/handoff_triggers/heldout.json`` (upset statements that must hand over,
  problems stated calmly that must not; written before the rule's last change and never tuned on, but by the
  rule's author: its ``about`` says so).

Prints JSON: per set, turns, handoffs by trigger and their share, and the turns handed over (or, for the sets that
must hand over, missed). Runnable alone: ``.venv/bin/python -m benchmarks.handoff_triggers``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.calls.handoff import caller_turn_trigger
from control_api.schemas.handoffs import HandoffPolicyModel

HERE = Path(__file__).resolve().parent
DEV = HERE / "handoff_triggers" / "dev.json"
HELDOUT_SENTIMENT = HERE / "handoff_triggers" / "heldout.json"
TEAM_FILES = (
    HERE / "kb" / "questions.jsonl",
    HERE / "kb" / "plain_words_dev.jsonl",
    HERE / "kb" / "sentence_dev.jsonl",
    HERE / "kb" / "unanswerable.jsonl",
    HERE / "asr_eval" / "questions.json",
)
HELDOUT_FILES = tuple(sorted((HERE / "heldout").glob("*/questions.json")))


def _texts(path: Path) -> list[str]:
    """The question texts of a JSON or JSON-lines question file (keys ``question`` or ``text``)."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    else:
        data = json.loads(path.read_text())
        rows = data if isinstance(data, list) else data["questions"]
    return [str(r.get("question") or r.get("text")) for r in rows if r.get("question") or r.get("text")]


def measure(texts: list[str], *, must_hand_over: bool, policy: HandoffPolicyModel) -> dict[str, Any]:
    """The triggers' decisions on ``texts``: counts by trigger, the share handed over, and the turns decided wrong."""
    by_source: dict[str, int] = {}
    wrong: list[str] = []
    for text in texts:
        decision, _ = caller_turn_trigger(text, policy)
        if decision is not None:
            by_source[decision[1]] = by_source.get(decision[1], 0) + 1
        if (decision is not None) != must_hand_over:
            wrong.append(text)
    handed = sum(by_source.values())
    return {
        "turns": len(texts),
        "must_hand_over": must_hand_over,
        "handed_over": handed,
        "share_handed_over": round(handed / max(1, len(texts)), 3),
        "by_trigger": by_source,
        "missed" if must_hand_over else "handed_over_wrongly": wrong,
    }


def run() -> dict[str, Any]:
    """Every set's figures, labelled development or held out."""
    policy = HandoffPolicyModel()
    dev = json.loads(DEV.read_text())
    out: dict[str, Any] = {"benchmark": "handoff_triggers", "policy_phrases": policy.phrases, "development": {}}
    for name, must in (("person", True), ("not_person", False), ("upset", True), ("calm", False)):
        out["development"][name] = measure(dev[name], must_hand_over=must, policy=policy)
    team = [t for path in TEAM_FILES for t in _texts(path)]
    out["development"]["team_questions"] = measure(team, must_hand_over=False, policy=policy)
    out["held_out"] = {
        path.parent.name: measure(_texts(path), must_hand_over=False, policy=policy) for path in HELDOUT_FILES
    }
    sentiment = json.loads(HELDOUT_SENTIMENT.read_text())
    for name, must in (("upset", True), ("calm_statements", False)):
        out["held_out"][f"sentiment_{name}"] = measure(sentiment[name], must_hand_over=must, policy=policy)
    return out


def main() -> None:
    """Print the report."""
    print(json.dumps(run(), indent=2))


if __name__ == "__main__":
    main()
