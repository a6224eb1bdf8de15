"""The narrow-margin simulation applies the product's weak-evidence rule to each final."""

from __future__ import annotations

from benchmarks.weak_margin_dev import Final, Heard, figures


def test_a_wider_margin_sends_narrow_finds_to_whisper() -> None:
    threshold = 0.5
    finals = [
        # Unanswerable, misheard into the base's words just over the threshold; Whisper's text finds nothing.
        Final(False, 0.8, Heard(True, 0.51, False), Heard(False, 0.3, True)),
        # Answerable, found clearly by pocketsphinx.
        Final(True, 0.9, Heard(True, 0.7, True), Heard(True, 0.7, True)),
        # Answerable, pocketsphinx found nothing; Whisper's text finds the right passage.
        Final(True, 0.6, Heard(False, 0.4, False), Heard(True, 0.6, True)),
    ]
    narrow_kept = figures(finals, threshold, 0.0)
    assert narrow_kept == {"to_whisper": 0.333, "right_passage_first": 1.0, "honest_not_found": 0.0}
    narrow_weak = figures(finals, threshold, 0.02)
    assert narrow_weak == {"to_whisper": 0.667, "right_passage_first": 1.0, "honest_not_found": 1.0}
    # Very unsure recognition is weak whatever the margin.
    unsure = [Final(True, 0.05, Heard(True, 0.9, False), Heard(True, 0.9, True))]
    assert figures(unsure, threshold, 0.0)["to_whisper"] == 1.0
