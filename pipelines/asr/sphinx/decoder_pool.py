"""pocketsphinx decoder configuration and a pool of idle decoders of this process.

Loading a decoder costs ~15 ms with the domain model, ~0.4 s with the general one, so idle ones are kept;
a rebuilt domain model starts a new generation and idle decoders of older ones are dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pocketsphinx

from pipelines.options import ASROptions

__all__ = ["DecoderConfig", "DecoderPool"]

_MAX_IDLE = 64


@dataclass(frozen=True, slots=True)
class DecoderConfig:
    """The decoder arguments of one domain model generation."""

    generation: int
    kwargs: dict[str, Any]


class DecoderPool:
    """Idle pocketsphinx decoders of the current model, and that model's decoder arguments.

    Args:
        options: The recogniser options (sample rate, acoustic model, domain LM, accuracy).
    """

    def __init__(self, options: ASROptions) -> None:
        self._options = options
        self._lock = threading.Lock()
        self._config = DecoderConfig(0, self._decoder_kwargs(options.lm_path, options.dict_path))
        self._idle: list[tuple[int, pocketsphinx.Decoder]] = []

    @property
    def config(self) -> DecoderConfig:
        """The current model's decoder arguments."""
        return self._config

    @property
    def generation(self) -> int:
        """Increases each time the domain model changes."""
        return self._config.generation

    def prewarm(self, count: int) -> None:
        """Load ``count`` decoders of the current model now (call this off the event loop)."""
        config = self._config
        decoders = [self._new_decoder(config) for _ in range(max(0, count))]
        with self._lock:
            self._idle.extend((config.generation, d) for d in decoders)

    def acquire(self) -> tuple[int, pocketsphinx.Decoder]:
        """Take an idle decoder of the current model, or load one (call this off the event loop)."""
        with self._lock:
            config = self._config
            while self._idle:
                generation, decoder = self._idle.pop()
                if generation == config.generation:
                    return generation, decoder
        return config.generation, self._new_decoder(config)

    def release(self, generation: int, decoder: pocketsphinx.Decoder) -> None:
        """Give a decoder back to the pool (dropped if the model changed meanwhile)."""
        with self._lock:
            if generation == self._config.generation and len(self._idle) < _MAX_IDLE:
                self._idle.append((generation, decoder))

    def reconfigure(self, *, lm_path: str, dict_path: str) -> DecoderConfig:
        """Start a new generation with this domain model; returns its decoder arguments."""
        with self._lock:
            self._config = DecoderConfig(self._config.generation + 1, self._decoder_kwargs(lm_path, dict_path))
            self._idle.clear()
            return self._config

    def _decoder_kwargs(self, lm_path: object, dict_path: object) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"samprate": self._options.sample_rate, "loglevel": "FATAL"}
        if self._options.acoustic_model is not None:
            kwargs["hmm"] = str(self._options.acoustic_model)
        if lm_path is not None:
            kwargs["lm"] = str(lm_path)
        if dict_path is not None:
            kwargs["dict"] = str(dict_path)
        # The lattice best-path pass costs a few ms at the end of an utterance and cuts word errors by a fifth
        # on the evaluation set; the flat second pass (``accurate``) costs ~100 ms more for little gain.
        kwargs["bestpath"] = True
        kwargs["fwdflat"] = self._options.accurate
        return kwargs

    @staticmethod
    def _new_decoder(config: DecoderConfig) -> pocketsphinx.Decoder:
        return pocketsphinx.Decoder(**config.kwargs)
