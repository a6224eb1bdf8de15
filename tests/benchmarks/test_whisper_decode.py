"""Whisper's decode-time benchmark: the worker's own decode on real audio, against the live path's head start."""

from __future__ import annotations

import json

import pytest

from benchmarks.whisper_decode import head_start_ms, main
from config.settings import Settings


def test_head_start_is_the_vad_stop_less_the_quiet_before_speculating() -> None:
    settings = Settings.model_validate(
        {"pipeline": {"vad": {"stop_secs": 0.3}, "asr": {"whisper": {"speculate_after_ms": 50}}}}
    )
    assert head_start_ms(settings) == pytest.approx(250.0)


def test_reports_encoder_and_decode_times_and_the_word_error_per_window(capsys: pytest.CaptureFixture[str]) -> None:
    main(["--limit", "2", "--windows", "1500,1000"])
    report = json.loads(capsys.readouterr().out)
    assert report["questions"] == 2 and report["audio_s_mean"] > 1.0
    assert set(report["windows"]) == {"1500", "1000"}
    assert report["head_start_ms"] == head_start_ms(Settings())
    for window in report["windows"].values():  # times are reported, not judged (benchmarks never gate on time)
        assert window["encode_ms_p50"] > 0 and window["decode_ms_p50"] > 0 and window["decode_ms_p50_no_prompt"] > 0
        assert window["wer"] < 0.5  # tiny.en hears two clear flite questions nearly word for word


def test_bad_windows_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--windows", "5000"])
    assert "--windows" in capsys.readouterr().err
