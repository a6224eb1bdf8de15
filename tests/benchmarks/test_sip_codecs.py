"""``benchmarks/sip_codecs.py`` runs on the installed codecs and reports every one the SIP endpoint answers with."""

from __future__ import annotations

import json

import pytest

from benchmarks.sip_codecs import main

pytestmark = pytest.mark.unit


def test_reports_cpu_for_each_codec_and_the_resampling(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--seconds", "1"])
    report = json.loads(capsys.readouterr().out)
    codecs = report["codec_ms_cpu_per_audio_second"]
    assert set(codecs) == {"PCMU", "PCMA", "G722"} and all(ms > 0 for ms in codecs.values())
    resampling = report["g711_resampling_ms_cpu_per_audio_second"]
    assert resampling > 0
    per_call = report["per_call_ms_cpu_per_audio_second"]
    assert per_call["G722"] == round(codecs["G722"], 3)  # no resampling: G.722 is the pipeline's rate
    assert per_call["PCMU"] == round(codecs["PCMU"] + resampling, 3)
