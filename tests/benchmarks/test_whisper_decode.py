"""Whisper's decode-time benchmark: the worker's own decode on real audio, against the live path's head start."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.whisper_decode import head_start_ms, main
from config.settings import Settings
from pipelines.asr.whisper_pool import default_model_path


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


def test_another_model_directory_is_decoded_and_named(capsys: pytest.CaptureFixture[str]) -> None:
    shipped = default_model_path()
    main(["--limit", "1", "--windows", "1000", "--model-dir", str(shipped)])
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == shipped.name and report["questions"] == 1
    assert report["windows"]["1000"]["wer"] < 0.5


def test_a_model_directory_without_a_model_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--model-dir", str(tmp_path)])
    assert "no model.bin" in capsys.readouterr().err
