"""Adapt pocketsphinx's acoustic model to the voices and line a desk actually hears (MAP on the Gaussian means).

The wheel's model was trained on read wideband speech. Callers on a telephone line, an accent the training
data lacked, or a synthetic voice sound different enough that the recogniser loses words the language model
cannot recover. Given recordings with their transcripts, each recording is force-aligned (pocketsphinx's
own alignment search, down to the senone of each 10 ms frame), and each Gaussian's mean is moved towards
the frames it explains (maximum a posteriori adaptation):

    mean' = (tau * mean + sum_t post_t * x_t) / (tau + sum_t post_t)

``tau`` is how many frames of evidence the original mean is worth: densities the recordings barely touch
keep their mean, densities they use a lot move to them. Variances, mixture weights and the model's
structure are kept, so an adapted model decodes at the same cost. The result is a model directory
(the base one's files, new ``means``, and ``adaptation.json`` describing what it was adapted on) that
``VOXDESK_PIPELINE__ASR__ACOUSTIC_MODEL`` points the recogniser at.

This is CPU work (about 0.05 s per second of audio): run it off the event loop.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pocketsphinx
from numpy.typing import NDArray

from pipelines.asr.domain_lm import tokenise_sentences
from pipelines.asr.sphinx_model import Floats, SphinxAcousticModel, read_cepstra, sphinx_features, write_gaussians

__all__ = [
    "AdaptationReport",
    "AdaptationStats",
    "AlignedUtterance",
    "Aligner",
    "AlignmentError",
    "Evidence",
    "adapt_acoustic_model",
    "adapted_means",
    "default_acoustic_model",
    "fit",
    "gather_evidence",
    "transcript_words",
    "write_adapted_model",
]

SAMPLE_RATE = 16000
DEFAULT_TAU = 10.0


def default_acoustic_model() -> Path:
    """The wheel's US English model directory."""
    return Path(pocketsphinx.get_model_path()) / "en-us" / "en-us"


class AlignmentError(ValueError):
    """A recording could not be aligned with its transcript (unknown words, or audio that does not match)."""


def transcript_words(text: str) -> list[str]:
    """A transcript as the recogniser's words: lower case, numbers spelled out, punctuation dropped."""
    return [word.replace("-", "") for sentence in tokenise_sentences(text) for word in sentence]


@dataclass(frozen=True, slots=True)
class AlignedUtterance:
    """One recording's features (one array per stream) and the senone each frame was aligned to."""

    features: list[Floats]
    senones: NDArray[np.int64]


class Aligner:
    """Forced alignment with pocketsphinx: words → phones → senone per 10 ms frame, with the frames' features.

    One decoder serves every alignment (not thread-safe: one aligner per thread).
    """

    def __init__(self, model_dir: Path | None = None, *, dict_path: Path | None = None) -> None:
        self._logdir = tempfile.TemporaryDirectory(prefix="voxdesk-align-")
        # Without the lattice best-path pass, the word alignment gives the state alignment phone boundaries it
        # can meet more often: on espeak-ng's voice it then fails on 1 recording in 8 instead of 1 in 5.
        kwargs: dict[str, object] = {
            "samprate": SAMPLE_RATE,
            "loglevel": "FATAL",
            "mfclogdir": self._logdir.name,
            "bestpath": False,
        }
        if model_dir is not None:
            kwargs["hmm"] = str(model_dir)
        if dict_path is not None:
            kwargs["dict"] = str(dict_path)
        self._decoder = pocketsphinx.Decoder(**kwargs)

    def close(self) -> None:
        """Remove the aligner's scratch directory."""
        self._logdir.cleanup()

    def unknown_words(self, words: Iterable[str]) -> list[str]:
        """The words the pronunciation dictionary lacks."""
        return sorted({w for w in words if self._decoder.lookup_word(w) is None})

    def align(self, pcm: bytes, words: list[str]) -> AlignedUtterance:
        """Align 16 kHz mono s16 ``pcm`` with ``words`` (``AlignmentError`` if that cannot be done)."""
        if not words:
            raise AlignmentError("the transcript has no words")
        if len(pcm) < SAMPLE_RATE // 5:  # 0.1 s
            raise AlignmentError("the recording is too short")
        if missing := self.unknown_words(words):
            raise AlignmentError(f"words missing from the pronunciation dictionary: {', '.join(missing)}")
        decoder = self._decoder
        try:
            decoder.set_align_text(" ".join(words))
            self._decode(pcm)
            decoder.set_alignment()
            self._decode(pcm)
            alignment = decoder.get_alignment()
        except RuntimeError as exc:
            raise AlignmentError("pocketsphinx could not align the audio with its transcript") from exc
        if alignment is None:
            raise AlignmentError("pocketsphinx could not align the audio with its transcript")
        cepstra = self._take_cepstra()
        senones = np.full(len(cepstra), -1, dtype=np.int64)
        for word in alignment:
            for phone in word:
                for state in phone:
                    senones[state.start : state.start + state.duration] = int(state.name)
        features = sphinx_features(cepstra)
        keep = senones >= 0
        return AlignedUtterance([f[keep] for f in features], senones[keep])

    def _decode(self, pcm: bytes) -> None:
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, False, True)
        self._decoder.end_utt()

    def _take_cepstra(self) -> Floats:
        """The newest utterance's cepstra (the alignment pass), removing the scratch files."""
        files = sorted(Path(self._logdir.name).glob("*.mfc"))
        if not files:
            raise AlignmentError("the decoder wrote no features")
        try:
            return read_cepstra(files[-1])
        finally:
            for path in files:
                path.unlink(missing_ok=True)


@dataclass(slots=True)
class AdaptationStats:
    """Sufficient statistics for MAP: per stream, each density's occupancy and posterior-weighted frame sum."""

    occupancy: list[Floats]  # (codebook, density)
    sums: list[Floats]  # (codebook, density, dim)
    utterances: int = 0
    frames: int = 0

    @classmethod
    def empty(cls, model: SphinxAcousticModel) -> AdaptationStats:
        """No evidence yet, shaped for ``model``."""
        return cls([np.zeros(m.shape[:2]) for m in model.means], [np.zeros(m.shape) for m in model.means])

    def add(self, model: SphinxAcousticModel, utterance: AlignedUtterance) -> None:
        """Accumulate one aligned utterance."""
        codebooks = model.senone_codebook[utterance.senones]
        for stream, x in enumerate(utterance.features):
            posteriors, _ = model.posteriors(stream, utterance.senones, x)
            np.add.at(self.occupancy[stream], codebooks, posteriors)
            np.add.at(self.sums[stream], codebooks, posteriors[:, :, None] * x[:, None, :])
        self.utterances += 1
        self.frames += len(utterance.senones)

    def merged(self, other: AdaptationStats) -> AdaptationStats:
        """The evidence of both."""
        return AdaptationStats(
            [a + b for a, b in zip(self.occupancy, other.occupancy, strict=True)],
            [a + b for a, b in zip(self.sums, other.sums, strict=True)],
            self.utterances + other.utterances,
            self.frames + other.frames,
        )


def fit(model: SphinxAcousticModel, utterances: Iterable[AlignedUtterance]) -> float:
    """Mean log-likelihood per frame and stream of aligned utterances under ``model``: higher fits better."""
    total, count = 0.0, 0
    for utterance in utterances:
        for stream, x in enumerate(utterance.features):
            total += float(model.posteriors(stream, utterance.senones, x)[1].sum())
            count += len(x)
    return total / count if count else float("nan")


@dataclass(slots=True)
class Evidence:
    """What a set of recordings says about the model: MAP statistics, and what was skipped and why.

    The first ``FIT_SAMPLE`` aligned utterances are kept to measure the fit before and after adaptation (all of
    them would hold every frame's features in memory).
    """

    stats: AdaptationStats
    audio_secs: float = 0.0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sample: list[AlignedUtterance] = field(default_factory=list)


FIT_SAMPLE = 200


def gather_evidence(
    model: SphinxAcousticModel,
    recordings: Iterable[tuple[str, bytes, str]],
    *,
    on_progress: Callable[[str, str | None], None] | None = None,
) -> Evidence:
    """Align each ``(name, pcm, transcript)`` with ``model`` and accumulate its statistics.

    Recordings that cannot be aligned are skipped, with the reason.
    """
    aligner = Aligner(model.directory)
    evidence = Evidence(AdaptationStats.empty(model))
    try:
        for name, pcm, transcript in recordings:
            try:
                utterance = aligner.align(pcm, transcript_words(transcript))
            except AlignmentError as exc:
                evidence.skipped.append((name, str(exc)))
                if on_progress is not None:
                    on_progress(name, str(exc))
                continue
            evidence.stats.add(model, utterance)
            evidence.audio_secs += len(pcm) / (2 * SAMPLE_RATE)
            if len(evidence.sample) < FIT_SAMPLE:
                evidence.sample.append(utterance)
            if on_progress is not None:
                on_progress(name, None)
    finally:
        aligner.close()
    return evidence


def adapted_means(model: SphinxAcousticModel, stats: AdaptationStats, *, tau: float = DEFAULT_TAU) -> list[Floats]:
    """MAP estimates of the Gaussian means: the prior mean weighted ``tau`` against the frames' evidence."""
    if tau <= 0:
        raise ValueError("tau must be positive")
    return [
        (tau * mean + total) / (tau + occ)[..., None]
        for mean, occ, total in zip(model.means, stats.occupancy, stats.sums, strict=True)
    ]


def write_adapted_model(base_dir: Path, out_dir: Path, means: list[Floats], description: dict[str, object]) -> None:
    """A complete model directory at ``out_dir``: ``base_dir``'s files with ``means`` replaced.

    Written beside ``out_dir`` and swapped in, so a recogniser never loads a half-written model.
    """
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for item in base_dir.iterdir():
            if item.is_file() and item.name not in {"means", "adaptation.json"}:
                shutil.copy2(item, staging / item.name)
        write_gaussians(staging / "means", means)
        (staging / "adaptation.json").write_text(json.dumps(description, indent=1) + "\n", encoding="utf-8")
        retired = None
        if out_dir.exists():
            retired = out_dir.with_name(f".{out_dir.name}.old-{time.time_ns()}")
            out_dir.rename(retired)
        staging.rename(out_dir)
        if retired is not None:
            shutil.rmtree(retired, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


@dataclass(slots=True)
class AdaptationReport:
    """What an adaptation used and what it skipped (with why)."""

    out_dir: Path
    utterances: int = 0
    audio_secs: float = 0.0
    frames: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    # Mean per frame and stream on (up to) the first FIT_SAMPLE aligned recordings: base model, adapted means.
    log_likelihood_before: float = 0.0
    log_likelihood_after: float = 0.0


def adapt_acoustic_model(
    recordings: Iterable[tuple[str, bytes, str]],
    *,
    out_dir: Path,
    base_dir: Path | None = None,
    tau: float = DEFAULT_TAU,
    on_progress: Callable[[str, str | None], None] | None = None,
) -> AdaptationReport:
    """Adapt ``base_dir``'s model (the wheel's by default) to ``recordings`` and write it to ``out_dir``.

    Args:
        recordings: ``(name, pcm, transcript)``: 16 kHz mono s16 audio and what was said in it.
        out_dir: Where the adapted model directory goes (replaced if it exists).
        base_dir: The model to adapt.
        tau: Prior weight in frames (higher: the model moves less).
        on_progress: Called with each recording's name and ``None``, or the reason it was skipped.

    Raises:
        AlignmentError: No recording could be aligned.
    """
    base = base_dir or default_acoustic_model()
    model = SphinxAcousticModel.load(base)
    evidence = gather_evidence(model, recordings, on_progress=on_progress)
    stats = evidence.stats
    if not stats.utterances:
        raise AlignmentError("no recording could be aligned with its transcript")
    means = adapted_means(model, stats, tau=tau)
    report = AdaptationReport(
        out_dir,
        utterances=stats.utterances,
        audio_secs=evidence.audio_secs,
        frames=stats.frames,
        skipped=evidence.skipped,
        log_likelihood_before=fit(model, evidence.sample),
        log_likelihood_after=fit(dataclasses.replace(model, means=means), evidence.sample),
    )
    write_adapted_model(
        base,
        out_dir,
        means,
        {
            "method": "MAP (Gaussian means)",
            "base_model": str(base),
            "tau": tau,
            "utterances": report.utterances,
            "audio_secs": round(report.audio_secs, 1),
            "frames": report.frames,
            "skipped": len(report.skipped),
            "log_likelihood_per_frame": {
                "before": round(report.log_likelihood_before, 3),
                "after": round(report.log_likelihood_after, 3),
            },
        },
    )
    return report
