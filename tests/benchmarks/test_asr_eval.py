"""``benchmarks/asr_eval.py`` runs alone and reports WER with the adapted acoustic model beside the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def test_reports_wer_per_model_and_answers() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "benchmarks/asr_eval.py",
            "--voices",
            "kal16,espeak-en-us",
            "--limit",
            "3",
            "--adapt-sentences",
            "6",
            "--pipeline-voices",
            "",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert report["acoustic_adaptation"]["sentences_per_voice"] == 6
    for voice in ("kal16", "espeak-en-us"):
        wer = report["wer"][voice]
        assert set(wer) >= {"general_lm", "domain_lm", "domain_lm_adapted", "domain_lm_adapted_voice_unseen"}
        assert all(0.0 <= wer[k] <= 2.0 for k in wer)
        assert set(report["answers_offline"][voice]) == {"domain", "adapted"}
    # What adaptation does to errors is asserted on more data in tests/pipelines/test_acoustic_adaptation.py.
    assert (ROOT / "benchmarks/out/asr_eval/acoustic/all-voices/adaptation.json").is_file()
