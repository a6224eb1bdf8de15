"""``voxdesk asr-adapt``: transcribed recordings in, an adapted model directory out (real subprocess)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from agent.wiring.pipelines import StageOptions
from benchmarks.asr_eval.render import render
from config import load_settings
from tests.voxdesk_cli import run_voxdesk

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STATEMENTS = (
    "you can pay your bill by direct debit or by card",
    "the router should show a steady white light when it is connected",
    "a technician can visit on weekdays between eight and six",
    "you can cancel within fourteen days without a charge",
    "check the cables before you restart the router",
)


def _run(args: list[str], tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return run_voxdesk(args, tmp_path, env=settings, timeout=300)


def test_adapts_on_the_usable_recordings_and_says_why_others_were_skipped(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    for i, text in enumerate(STATEMENTS):
        render("espeak-en-us", text, recordings / f"call-{i}.wav")
        (recordings / f"call-{i}.txt").write_text(text.capitalize() + ".\n", encoding="utf-8")
    render("espeak-en-us", "hello there", recordings / "no-transcript.wav")
    (recordings / "broken.wav").write_bytes(b"RIFF not really audio")
    (recordings / "broken.txt").write_text("hello", encoding="utf-8")
    render("espeak-en-us", "my zyxxqy is broken", recordings / "odd-word.wav")
    (recordings / "odd-word.txt").write_text("My zyxxqy is broken.", encoding="utf-8")

    result = _run(["asr-adapt", str(recordings), "--out", str(tmp_path / "adapted")], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "skipped no-transcript.wav: no transcript (no-transcript.txt)" in out
    assert "skipped broken.wav: not an audio file" in out
    assert "skipped odd-word.wav: words missing from the pronunciation dictionary: zyxxqy" in out
    used = [line for line in out.splitlines() if line.startswith("used call-")]
    assert len(used) >= 3
    assert f"VOXDESK_PIPELINE__ASR__ACOUSTIC_MODEL={tmp_path / 'adapted'}" in out
    description = json.loads((tmp_path / "adapted" / "adaptation.json").read_text())
    assert description["utterances"] == len(used)
    assert description["log_likelihood_per_frame"]["after"] > description["log_likelihood_per_frame"]["before"]

    settings = load_settings(pipeline={"asr": {"acoustic_model": str(tmp_path / "adapted")}})
    assert StageOptions.from_settings(settings).asr.acoustic_model == tmp_path / "adapted"
    doctor = _run(["doctor"], tmp_path, VOXDESK_PIPELINE__ASR__ACOUSTIC_MODEL=str(tmp_path / "adapted"))
    assert f"acoustic model: {tmp_path / 'adapted'}: adapted on {len(used)} recordings" in doctor.stdout, doctor.stdout


def test_nothing_to_adapt_on_exits_2_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _run(["asr-adapt", str(tmp_path / "empty")], tmp_path)
    assert result.returncode == 2
    assert "no audio file with a transcript under" in result.stderr
    missing = _run(["asr-adapt", str(tmp_path / "nowhere")], tmp_path)
    assert missing.returncode == 2
    assert "is not a directory" in missing.stderr
