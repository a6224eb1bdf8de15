"""benchmarks.vad_stop: its figures, and both rules on real speech."""

from __future__ import annotations

import asyncio

import pytest

from benchmarks.vad_stop import _figures, stops
from pipelines.vad import load_silero
from tests.pipelines.conftest import flite_pcm

pytestmark = pytest.mark.integration


def test_figures_count_a_question_cut_in_two_and_the_lag_after_its_voice() -> None:
    rows = [(1.0, [0.5, 1.3]), (2.0, [2.26]), (1.5, [])]
    figures = _figures(rows, stop_secs=0.2)
    assert figures["questions"] == 3
    assert figures["cut_in_two"] == 1 and figures["no_stop"] == 1
    # Lags: 1.3 - 0.2 - 1.0 = 100 ms (the stop at 0.5 s cut the first question), 2.26 - 0.2 - 2.0 = 60 ms.
    assert figures["lag_ms"] == {"p50": 80, "p90": 100, "max": 100}


def test_the_fade_rule_stops_no_later_than_silero_alone_on_real_speech() -> None:
    pcm = flite_pcm("How much is the fastest plan every month?", voice="rms")
    model = load_silero()
    voiced, alone = asyncio.run(stops(pcm, 0.0, model, 0.0))
    same_voiced, faded = asyncio.run(stops(pcm, 0.03, model, 0.0))
    assert voiced == same_voiced > 0
    assert len(alone) == len(faded) == 1
    assert voiced <= faded[0] <= alone[0]
