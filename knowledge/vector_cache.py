"""Vectors derived from a knowledge base, kept beside its calibration and reused while the base is unchanged.

One ``.npz`` per kind (sentence views, the base's words): the vectors and the base's fingerprint. A file whose
fingerprint or row count does not match, or that cannot be read, is not used (the caller rebuilds it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["load_vectors", "save_vectors"]


def load_vectors(path: Path, fingerprint: str, count: int) -> npt.NDArray[np.float32] | None:
    """The ``count`` vectors stored at ``path`` for the base ``fingerprint``, or None."""
    try:
        with np.load(path) as data:
            if str(data["fingerprint"]) != fingerprint or data["vectors"].shape[0] != count:
                return None
            return np.asarray(data["vectors"], dtype=np.float32)
    except (OSError, ValueError, KeyError):
        return None


def save_vectors(path: Path, fingerprint: str, vectors: npt.NDArray[np.float32]) -> None:
    """Store ``vectors`` for the base ``fingerprint`` at ``path`` (written aside, then renamed into place)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, fingerprint=np.asarray(fingerprint), vectors=vectors)
    tmp.replace(path)
