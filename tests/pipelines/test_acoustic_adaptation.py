"""Acoustic adaptation: the model files it reads and writes, forced alignment, MAP, and what it does to errors.

Everything runs on the real pocketsphinx model and decoder, with espeak-ng and flite speaking.
"""

from __future__ import annotations

import filecmp
from pathlib import Path

import numpy as np
import pocketsphinx
import pytest

from benchmarks.asr_eval.adaptation import adaptation_sentences
from benchmarks.asr_eval.harness import read_pcm
from benchmarks.asr_eval.render import questions, render
from benchmarks.asr_eval.scoring import decode, edit_distance
from pipelines.asr.acoustic_adaptation import (
    AdaptationStats,
    Aligner,
    AlignmentError,
    adapt_acoustic_model,
    adapted_means,
    default_acoustic_model,
    fit,
    transcript_words,
    write_adapted_model,
)
from pipelines.asr.domain_lm import DomainLM
from pipelines.asr.pocketsphinx import PocketsphinxBackend
from pipelines.asr.sphinx_model import (
    ModelFormatError,
    SphinxAcousticModel,
    read_gaussians,
    sphinx_features,
)
from pipelines.options import ASROptions
from tests.pipelines.conftest import flite_pcm

pytestmark = pytest.mark.integration

SENTENCE = "my router keeps dropping the connection every evening"


@pytest.fixture(scope="module")
def model() -> SphinxAcousticModel:
    return SphinxAcousticModel.load(default_acoustic_model())


def _decoder(hmm: Path | None = None, lm: DomainLM | None = None) -> pocketsphinx.Decoder:
    kwargs: dict[str, object] = {"samprate": 16000, "loglevel": "FATAL", "bestpath": True, "fwdflat": False}
    if hmm is not None:
        kwargs["hmm"] = str(hmm)
    if lm is not None:
        kwargs.update(lm=str(lm.lm_path), dict=str(lm.dict_path))
    return pocketsphinx.Decoder(**kwargs)


def test_the_wheel_model_reads_as_pocketsphinx_defines_it(model: SphinxAcousticModel) -> None:
    assert len(model.phones) == len(model.means[0]) == 42  # one codebook per phone (phonetically tied)
    assert [m.shape for m in model.means] == [(42, 128, 13)] * 3
    assert model.log_weights.shape == (len(model.senone_codebook), 3, 128)
    # Mixture weights are quantised to a byte each, so they sum to a little under one.
    sums = np.exp(model.log_weights).sum(axis=2)
    assert sums.min() > 0.85 and sums.max() <= 1.0 + 1e-9
    assert (model.variances[0] >= 1e-4).all()


def test_senone_codebooks_agree_with_pocketsphinx_alignment(model: SphinxAcousticModel) -> None:
    """Each aligned state's senone maps (through our mdef reader) to the phone pocketsphinx aligned it in."""
    decoder = _decoder()
    pcm = flite_pcm(SENTENCE)
    decoder.set_align_text(SENTENCE)
    decoder.start_utt()
    decoder.process_raw(pcm, False, True)
    decoder.end_utt()
    decoder.set_alignment()
    decoder.start_utt()
    decoder.process_raw(pcm, False, True)
    decoder.end_utt()
    checked = 0
    for word in decoder.get_alignment():
        for phone in word:
            for state in phone:
                assert model.phones[model.senone_codebook[int(state.name)]] == phone.name
                checked += 1
    assert checked >= 3 * 30


def test_rewritten_model_decodes_exactly_like_the_original(model: SphinxAcousticModel, tmp_path: Path) -> None:
    out = tmp_path / "copy"
    write_adapted_model(model.directory, out, model.means, {"method": "none"})
    for a, b in zip(read_gaussians(out / "means"), read_gaussians(model.directory / "means"), strict=True):
        np.testing.assert_array_equal(a, b)
    pcm = flite_pcm(SENTENCE, "awb")
    rewritten, original = _decoder(out), _decoder()
    assert decode(rewritten, pcm)[0] == decode(original, pcm)[0] != ""
    assert rewritten.hyp().score == original.hyp().score


def test_features_are_sphinx_deltas_with_batch_cmn() -> None:
    frames = np.arange(20, dtype=np.float64)[:, None] * np.ones((1, 13))
    frames[:, 0] += 10
    frames[0, 0] = -5  # a frame of no energy: left out of the mean
    cep, delta, double_delta = sphinx_features(frames)
    voiced_mean = frames[1:].mean(axis=0)
    np.testing.assert_allclose(cep, frames - voiced_mean)
    np.testing.assert_allclose(delta[3:17, 1], 4.0)  # c[t+2] - c[t-2] on a ramp
    np.testing.assert_allclose(double_delta[4:16, 1], 0.0)
    assert delta[0, 1] == 2.0  # the first frame repeats before the start


def test_features_line_up_with_the_alignment(model: SphinxAcousticModel) -> None:
    aligner = Aligner()
    try:
        utterance = aligner.align(flite_pcm(SENTENCE), transcript_words(SENTENCE))
    finally:
        aligner.close()
    moved = type(utterance)([np.roll(f, 8, axis=0) for f in utterance.features], utterance.senones)
    assert len(utterance.senones) > 150
    # 80 ms off, the same senones explain the frames far worse.
    assert fit(model, [utterance]) > fit(model, [moved]) + 3.0


def test_alignment_errors_say_what_is_wrong(tmp_path: Path) -> None:
    aligner = Aligner()
    try:
        with pytest.raises(AlignmentError, match="missing from the pronunciation dictionary: qwxzzy"):
            aligner.align(flite_pcm(SENTENCE), ["my", "qwxzzy", "router"])
        with pytest.raises(AlignmentError, match="no words"):
            aligner.align(flite_pcm(SENTENCE), [])
        with pytest.raises(AlignmentError, match="too short"):
            aligner.align(b"\0\0" * 100, ["hello"])
    finally:
        aligner.close()
    with pytest.raises(AlignmentError, match="no recording could be aligned"):
        adapt_acoustic_model([("a", b"\0\0" * 100, "hello")], out_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_adapted_model_replaces_an_old_one_whole(model: SphinxAcousticModel, tmp_path: Path) -> None:
    out = tmp_path / "adapted"
    write_adapted_model(model.directory, out, model.means, {"run": 1})
    moved = [m + 1.0 for m in model.means]
    write_adapted_model(model.directory, out, moved, {"run": 2})
    assert '"run": 2' in (out / "adaptation.json").read_text()
    np.testing.assert_allclose(read_gaussians(out / "means")[0], moved[0], rtol=1e-6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapted"]  # no staging or retired copies left


def test_map_leaves_unseen_densities_alone(model: SphinxAcousticModel) -> None:
    stats = AdaptationStats.empty(model)
    stats.occupancy[0][5, 7] = 30.0
    stats.sums[0][5, 7] = 30.0 * (model.means[0][5, 7] + 2.0)
    means = adapted_means(model, stats, tau=10.0)
    np.testing.assert_allclose(means[0][5, 7], model.means[0][5, 7] + 1.5)  # 30 frames against tau 10
    untouched = np.ones(model.means[0].shape[:2], dtype=bool)
    untouched[5, 7] = False
    np.testing.assert_array_equal(means[0][untouched], model.means[0][untouched])
    np.testing.assert_array_equal(means[1], model.means[1])
    with pytest.raises(ValueError, match="tau"):
        adapted_means(model, stats, tau=0.0)


def test_not_a_model_directory_is_refused_clearly(tmp_path: Path) -> None:
    (tmp_path / "means").write_bytes(b"garbage")
    with pytest.raises(ModelFormatError, match="means: not a Sphinx 3 parameter file"):
        SphinxAcousticModel.load(tmp_path)
    with pytest.raises(ValueError, match="not a pocketsphinx model directory \\(no mdef, variances\\)"):
        PocketsphinxBackend(ASROptions(acoustic_model=tmp_path, processes=0))


@pytest.mark.slow
def test_adapting_to_espeak_cuts_its_word_errors(demo_statements: str, domain_lm: DomainLM, tmp_path: Path) -> None:
    """Adapted on knowledge-base statements, tested on caller questions: different sentences, same voice."""
    asked = questions()
    statements = adaptation_sentences(demo_statements, [q["text"] for q in asked], 16)
    recordings = []
    for i, text in enumerate(statements):
        recordings.append((f"s{i}", read_pcm(render("espeak-en-us", text, tmp_path / f"s{i}.wav")), text))
    out = tmp_path / "adapted"
    report = adapt_acoustic_model(recordings, out_dir=out)
    assert report.utterances + len(report.skipped) == 16 and report.utterances >= 10
    assert report.log_likelihood_after > report.log_likelihood_before
    assert filecmp.cmp(out / "variances", default_acoustic_model() / "variances", shallow=False)

    base, adapted = _decoder(lm=domain_lm), _decoder(out, lm=domain_lm)
    errors = {"base": 0, "adapted": 0}
    words = 0
    for q in asked[:8]:
        pcm = read_pcm(render("espeak-en-us", q["text"], tmp_path / f"{q['id']}.wav"))
        ref = transcript_words(q["text"])
        words += len(ref)
        errors["base"] += edit_distance(ref, transcript_words(decode(base, pcm)[0]))
        errors["adapted"] += edit_distance(ref, transcript_words(decode(adapted, pcm)[0]))
    assert errors["base"] / words > 0.25  # espeak-ng's voice is hard for the wheel's model
    assert errors["adapted"] <= errors["base"] / 2, errors

    # The recogniser serves calls from the adapted model when the setting points at it.
    backend = PocketsphinxBackend(ASROptions(acoustic_model=out, processes=0, prewarm_decoders=0))
    _, decoder = backend.acquire()
    assert decoder.config["hmm"] == str(out)
