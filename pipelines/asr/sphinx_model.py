"""The parts of a pocketsphinx (Sphinx 3) acoustic model that adaptation reads and writes.

A model directory holds, among others: ``mdef`` (binary model definition: which senone belongs to which phone),
``means`` and ``variances`` (Gaussian codebooks: one per context-independent phone in the phonetically-tied
model the wheel ships, in three 13-dimensional streams of 128 densities), and ``sendump`` (each senone's
mixture weights over its phone's codebook, quantised to a byte). The formats are those pocketsphinx's own
readers accept (``ms_gauden.c``, ``bin_mdef.c``, ``ptm_mgau.c``); a file they would reject raises
``ModelFormatError`` here too.

Features are computed as the decoder computes them: the cepstra pocketsphinx writes to ``mfclogdir``
(its own front end, noise removal included), utterance-mean normalised (``-cmn batch``, frames of negative
energy left out of the mean) and extended with pocketsphinx's ``1s_c_d_dd`` deltas.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "ModelFormatError",
    "SphinxAcousticModel",
    "read_cepstra",
    "read_gaussians",
    "read_mixture_log_weights",
    "read_senone_phones",
    "sphinx_features",
    "write_gaussians",
]

Floats = NDArray[np.float64]

_BYTE_ORDER = 0x11223344
_MDEF_MAGIC = 0x46444D42  # "BMDF" read as a little-endian int32
_LOG_BASE = np.log(1.0001)  # pocketsphinx's log base; sendump stores -log(w) >> 10 in a byte
_VARIANCE_FLOOR = 1e-4  # pocketsphinx's -varfloor default
_DELTA_WINDOW = 2  # FEAT_DCEP_WIN


class ModelFormatError(ValueError):
    """A model file is missing, truncated or not in a format pocketsphinx reads."""


def _int32(data: bytes, offset: int, path: Path) -> int:
    if offset + 4 > len(data):
        raise ModelFormatError(f"{path.name}: truncated")
    return int(struct.unpack_from("<i", data, offset)[0])


def read_gaussians(path: Path) -> list[Floats]:
    """A ``means`` or ``variances`` file: one array per stream, shaped (codebook, density, dimension)."""
    data = _read(path)
    marker = data.find(b"endhdr\n")
    if not data.startswith(b"s3\n") or marker < 0:
        raise ModelFormatError(f"{path.name}: not a Sphinx 3 parameter file")
    offset = marker + len(b"endhdr\n")
    if _int32(data, offset, path) != _BYTE_ORDER:
        raise ModelFormatError(f"{path.name}: big-endian files are not supported")
    n_codebook, n_stream, n_density = (_int32(data, offset + 4 * i, path) for i in (1, 2, 3))
    offset += 16
    dims = [_int32(data, offset + 4 * i, path) for i in range(n_stream)]
    offset += 4 * n_stream
    count = _int32(data, offset, path)
    offset += 4
    if count != n_codebook * n_density * sum(dims) or offset + 4 * count > len(data):
        raise ModelFormatError(f"{path.name}: sizes do not match its header")
    flat = np.frombuffer(data, dtype="<f4", count=count, offset=offset).reshape(n_codebook, -1)
    streams, start = [], 0
    for dim in dims:
        block = flat[:, start : start + n_density * dim].reshape(n_codebook, n_density, dim)
        streams.append(block.astype(np.float64))
        start += n_density * dim
    return streams


def write_gaussians(path: Path, streams: list[Floats]) -> None:
    """Write ``streams`` (as ``read_gaussians`` returns them) in the Sphinx 3 format, without a checksum."""
    n_codebook, n_density = streams[0].shape[:2]
    dims = [s.shape[2] for s in streams]
    body = np.concatenate([s.reshape(n_codebook, -1) for s in streams], axis=1).astype("<f4")
    header = b"s3\nversion 1.0\nendhdr\n"
    sizes = struct.pack(f"<I3i{len(dims)}ii", _BYTE_ORDER, n_codebook, len(dims), n_density, *dims, body.size)
    path.write_bytes(header + sizes + body.tobytes())


def read_mixture_log_weights(path: Path, *, n_stream: int, n_density: int) -> Floats:
    """A ``sendump`` file's mixture weights as natural logs, shaped (senone, stream, density)."""
    data = _read(path)
    offset = 0
    for _ in range(2):  # title, then header
        offset += 4 + _int32(data, offset, path)
    fields: dict[str, str] = {}
    while (size := _int32(data, offset, path)) != 0:
        key, _, value = data[offset + 4 : offset + 4 + size].rstrip(b"\0").decode("latin-1").partition(" ")
        fields[key] = value
        offset += 4 + size
    offset += 4
    if int(fields.get("cluster_count", "0")) != 0:
        raise ModelFormatError(f"{path.name}: clustered mixture weights are not supported")
    rows, n_senone = _int32(data, offset, path), _int32(data, offset + 4, path)
    offset += 8
    if rows != n_density or offset + n_stream * n_density * n_senone > len(data):
        raise ModelFormatError(f"{path.name}: sizes do not match the codebooks")
    quantised = np.frombuffer(data, dtype=np.uint8, count=n_stream * n_density * n_senone, offset=offset)
    log_weights = -(quantised.astype(np.float64) * 1024.0) * _LOG_BASE
    return np.ascontiguousarray(log_weights.reshape(n_stream, n_density, n_senone).transpose(2, 0, 1))


def read_senone_phones(path: Path) -> tuple[list[str], NDArray[np.int64]]:
    """A binary ``mdef``: the context-independent phone names, and each senone's phone (its codebook)."""
    data = _read(path)
    if _int32(data, 0, path) != _MDEF_MAGIC:
        raise ModelFormatError(f"{path.name}: not a little-endian binary model definition")
    offset = 12 + _int32(data, 8, path)  # magic, version, format description
    n_ciphone, n_phone, n_emit_state, _, n_senone, _, n_sseq, _, n_cd_tree, _ = (
        _int32(data, offset + 4 * i, path) for i in range(10)
    )
    offset += 40
    names = data[offset:].split(b"\0", n_ciphone)[:n_ciphone]
    phones = [n.decode("ascii") for n in names]
    offset += sum(len(n) + 1 for n in names)
    offset = (offset + 3) & ~3
    offset += 8 * n_cd_tree
    entries = np.frombuffer(data, dtype=np.uint8, count=12 * n_phone, offset=offset).reshape(n_phone, 12)
    offset += 12 * n_phone
    if n_emit_state <= 0:
        raise ModelFormatError(f"{path.name}: models with mixed state counts are not supported")
    offset += 4  # the senone sequences' total length
    sseq = np.frombuffer(data, dtype="<u2", count=n_sseq * n_emit_state, offset=offset).reshape(n_sseq, -1)
    ssid = entries[:, 0:4].copy().view("<i4")[:, 0]
    base = np.where(np.arange(n_phone) < n_ciphone, np.arange(n_phone), entries[:, 9])  # cd.ctx[0]
    senone_phone = np.full(n_senone, -1, dtype=np.int64)
    for state in range(n_emit_state):
        senones = sseq[ssid, state]
        first = senone_phone[senones] == -1
        senone_phone[senones[first]] = base[first]
    if (senone_phone < 0).any():
        raise ModelFormatError(f"{path.name}: senones without a phone")
    return phones, senone_phone


def read_cepstra(path: Path, *, n_cep: int = 13) -> Floats:
    """A cepstra file pocketsphinx wrote to ``mfclogdir`` (big-endian), shaped (frame, coefficient)."""
    data = _read(path)
    count = struct.unpack_from(">i", data, 0)[0] if len(data) >= 4 else -1
    if count < 0 or count % n_cep or 4 + 4 * count > len(data):
        raise ModelFormatError(f"{path.name}: not a cepstra file")
    return np.frombuffer(data, dtype=">f4", count=count, offset=4).reshape(-1, n_cep).astype(np.float64)


def sphinx_features(cepstra: Floats) -> list[Floats]:
    """``1s_c_d_dd`` features with batch CMN: cepstra, deltas and double deltas, one array per stream."""
    cep = cepstra.copy()
    voiced = cep[:, 0] >= 0
    if voiced.any():
        cep -= cep[voiced].mean(axis=0)
    pad = _DELTA_WINDOW + 1
    padded = np.concatenate([np.repeat(cep[:1], pad, axis=0), cep, np.repeat(cep[-1:], pad, axis=0)])
    frames = len(cep)

    def shifted(k: int) -> Floats:
        return padded[pad + k : pad + k + frames]

    w = _DELTA_WINDOW
    delta = shifted(w) - shifted(-w)
    double_delta = (shifted(w + 1) - shifted(-w + 1)) - (shifted(w - 1) - shifted(-w - 1))
    return [cep, delta, double_delta]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ModelFormatError(f"{path}: {exc.strerror or exc}") from exc


@dataclass(frozen=True, slots=True)
class SphinxAcousticModel:
    """A phonetically-tied acoustic model's Gaussians, mixture weights and senone-to-codebook map."""

    directory: Path
    means: list[Floats]
    variances: list[Floats]
    log_weights: Floats  # (senone, stream, density)
    senone_codebook: NDArray[np.int64]
    phones: list[str]

    @classmethod
    def load(cls, directory: Path) -> SphinxAcousticModel:
        """Read a model directory (``ModelFormatError`` when it is not a model this module can adapt)."""
        means = read_gaussians(directory / "means")
        variances = [np.maximum(v, _VARIANCE_FLOOR) for v in read_gaussians(directory / "variances")]
        if [m.shape for m in means] != [v.shape for v in variances]:
            raise ModelFormatError(f"{directory}: means and variances differ in shape")
        n_codebook, n_density = means[0].shape[:2]
        if not (directory / "sendump").exists():
            raise ModelFormatError(f"{directory}: no sendump (only models with quantised mixture weights)")
        log_weights = read_mixture_log_weights(directory / "sendump", n_stream=len(means), n_density=n_density)
        phones, senone_codebook = read_senone_phones(directory / "mdef")
        if len(phones) != n_codebook or len(senone_codebook) != len(log_weights):
            raise ModelFormatError(f"{directory}: not a phonetically-tied model (one codebook per phone)")
        return cls(directory, means, variances, log_weights, senone_codebook, phones)

    def posteriors(self, stream: int, senones: NDArray[np.int64], x: Floats) -> tuple[Floats, Floats]:
        """Each frame's density posteriors within its senone's codebook, and its log-likelihood in ``stream``.

        ``x`` is (frame, dim); returns ``(posteriors (frame, density), log_likelihood (frame,))``.
        """
        codebooks = self.senone_codebook[senones]
        mean = self.means[stream][codebooks]
        var = self.variances[stream][codebooks]
        diff = x[:, None, :] - mean
        log_density = -0.5 * ((diff * diff) / var + np.log(2 * np.pi * var)).sum(axis=2)
        joint = log_density + self.log_weights[senones, stream]
        top = joint.max(axis=1, keepdims=True)
        weights = np.exp(joint - top)
        total = weights.sum(axis=1, keepdims=True)
        return weights / total, (top + np.log(total))[:, 0]
