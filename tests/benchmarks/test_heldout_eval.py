"""The held-out benchmark's machinery on a few questions: a server on the Riverbend knowledge base, calls over
``WS /api/voice/stream`` in one voice, the report's figures per set and voice. Not a quality assertion."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from benchmarks.heldout_eval import ROOT, question_sets, right

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
EVAL = (sys.executable, "-m", "benchmarks.heldout_eval")


def test_question_sets_are_keyed_and_scored_by_the_shared_rule() -> None:
    sets = {s.name: s for s in question_sets(["team", "riverbend", "demo_callers"])}
    assert [s.held_out for s in sets.values()] == [False, True, True]
    riverbend = sets["riverbend"].questions
    assert sum(q.answerable for q in riverbend) == 42 and sum(not q.answerable for q in riverbend) == 10
    q = next(q for q in riverbend if q.id == "r02")
    citation = (
        'Understanding your water bill (understanding-your-bill.md), section "How the charges are worked out", chunk 2'
    )
    assert right(q, citation, "Standing charge per quarter; Water supply: $18.40.")
    assert not right(q, citation, "Standing charge per quarter.")  # the key phrase is missing
    assert not right(q, citation.replace("understanding-your-bill.md", "other-charges.xlsx"), "$18.40")


def test_three_heldout_questions_through_the_whole_audio_path() -> None:
    setting = "VOXDESK_PIPELINE__ASR__WHISPER__SPECULATE_AFTER_MS=60"
    out = subprocess.run(
        [*EVAL, "--sets", "riverbend", "--voices", "slt", "--limit", "2", "--server-env", setting],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,  # about 50 s on a quiet machine; minutes when the 2 cores are shared
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout)
    assert report["sets"]["riverbend"] == {
        "source": "benchmarks/heldout/riverbend/questions.json (held out)",
        "knowledge_base": "benchmarks/heldout/riverbend/docs",
        "held_out": True,
        "answerable": 2,
        "unanswerable": 1,
    }
    spoken = report["spoken"]["slt"]["riverbend"]
    assert spoken["questions"] == 3
    assert spoken["no_answer"] == [], spoken  # every call was heard and answered over the socket
    assert spoken["answered_without_citation"] == [], spoken  # each answer's citation was read back
    assert 0.0 <= spoken["wer"] < 1.0 and spoken["latency_p50_ms"] is not None
    # As the caller hears it: the answer's first audio frame comes no later than its first voiced one.
    assert 0 < spoken["first_audio_p50_ms"] <= spoken["heard_p50_ms"], spoken
    # Every confirming question asked (if any) was answered by the scripted caller, yes at most once per question.
    assert spoken["confirmations_answered_yes"] <= round(spoken["confirmation_rate"] * spoken["questions"])
    assert set(report["typed"]["riverbend"]) >= {"right_passage_first", "right_passage_top3", "honest_not_found"}
    assert report["voices"]["slt"] == {"engine": "flite", "used_in_development": True}
    # What the calls cost the server's process tree; the second opinion (on by default) decoded in its own worker.
    assert report["server_env"] == {"VOXDESK_PIPELINE__ASR__WHISPER__SPECULATE_AFTER_MS": "60"}
    assert 0 < spoken["whisper_cpu_s_per_call"] < spoken["server_cpu_s_per_call"], spoken


def test_a_server_setting_must_be_a_voxdesk_variable() -> None:
    out = subprocess.run(
        [*EVAL, "--typed-only", "--server-env", "PATH=/tmp"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2 and "--server-env takes VOXDESK_NAME=VALUE" in out.stderr, out.stderr[-2000:]
