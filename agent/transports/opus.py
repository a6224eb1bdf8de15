"""libopus through ctypes: 20 ms voice frames encoded and decoded mono at 16 kHz, with no resampling.

PyAV's libopus wrapper decodes only at 48 kHz stereo (FFmpeg fixes the rate), so every caller frame was decoded
at three times the rate the pipeline wants, then resampled; and encoding through it costs a frame object, a
packet object and their timestamps per 20 ms. libopus itself decodes at 8, 12, 16, 24 or 48 kHz and encodes from
any of them (RFC 6716 §2). ctypes releases the GIL for the length of each call.

The library is Debian's ``libopus0`` (``scripts/bootstrap`` installs it), found by ``ctypes.util.find_library``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache
from typing import Any

__all__ = ["OPUS_RATES", "OpusError", "OpusFrameDecoder", "OpusFrameEncoder", "load_libopus"]

# Rates libopus encodes from and decodes to natively.
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)
_APPLICATION_VOIP = 2048
_SET_BITRATE = 4002
_SET_COMPLEXITY = 4010
_SET_SIGNAL = 4024
_SIGNAL_VOICE = 3001
_MAX_PACKET = 1500
# The longest frame libopus returns: 120 ms at 48 kHz.
_MAX_FRAME_SAMPLES = 5760


class OpusError(RuntimeError):
    """libopus returned an error code (its ``opus_strerror`` text is the message)."""


@cache
def load_libopus() -> Any:
    """The libopus shared library, its functions typed (raises ``OSError`` when it is not installed)."""
    name = ctypes.util.find_library("opus")
    if name is None:
        raise OSError("libopus is not installed (Debian package libopus0; scripts/bootstrap installs it)")
    lib: Any = ctypes.CDLL(name)
    c_int, c_int32, ptr = ctypes.c_int, ctypes.c_int32, ctypes.c_void_p
    lib.opus_encoder_create.restype = ptr
    lib.opus_encoder_create.argtypes = [c_int32, c_int, c_int, ctypes.POINTER(c_int)]
    lib.opus_encoder_ctl.restype = c_int
    lib.opus_encoder_ctl.argtypes = [ptr, c_int, c_int32]
    lib.opus_encode.restype = c_int32
    lib.opus_encode.argtypes = [ptr, ctypes.c_char_p, c_int, ctypes.c_char_p, c_int32]
    lib.opus_encoder_destroy.argtypes = [ptr]
    lib.opus_decoder_create.restype = ptr
    lib.opus_decoder_create.argtypes = [c_int32, c_int, ctypes.POINTER(c_int)]
    lib.opus_decode.restype = c_int
    lib.opus_decode.argtypes = [ptr, ctypes.c_char_p, c_int32, ctypes.c_char_p, c_int, c_int]
    lib.opus_decoder_destroy.argtypes = [ptr]
    lib.opus_strerror.restype = ctypes.c_char_p
    lib.opus_strerror.argtypes = [c_int]
    return lib


def _check(lib: Any, code: int) -> int:
    if code < 0:
        raise OpusError(lib.opus_strerror(code).decode())
    return code


class OpusFrameEncoder:
    """Encodes 16-bit mono PCM frames (2.5-60 ms) to Opus packets, one packet per frame.

    Args:
        sample_rate: The PCM's rate (one of :data:`OPUS_RATES`).
        bit_rate: Target bit rate (32 kbit/s is transparent for wideband speech).
        complexity: 0-10; speech at 32 kbit/s loses nothing audible below the default 10, and each step costs CPU
            on the thread that encodes.
    """

    def __init__(self, sample_rate: int, *, bit_rate: int = 32000, complexity: int = 1) -> None:
        if sample_rate not in OPUS_RATES:
            raise ValueError(f"Opus encodes from {OPUS_RATES} Hz, not {sample_rate}")
        self._lib = load_libopus()
        error = ctypes.c_int()
        self._state = self._lib.opus_encoder_create(sample_rate, 1, _APPLICATION_VOIP, ctypes.byref(error))
        _check(self._lib, error.value)
        for request, value in ((_SET_BITRATE, bit_rate), (_SET_COMPLEXITY, complexity), (_SET_SIGNAL, _SIGNAL_VOICE)):
            _check(self._lib, self._lib.opus_encoder_ctl(self._state, request, value))
        self._out = ctypes.create_string_buffer(_MAX_PACKET)

    def encode(self, pcm: bytes) -> bytes:
        """The Opus packet for one frame of 16-bit little-endian mono PCM."""
        size = _check(self._lib, self._lib.opus_encode(self._state, pcm, len(pcm) // 2, self._out, _MAX_PACKET))
        return self._out.raw[:size]

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.opus_encoder_destroy(state)


class OpusFrameDecoder:
    """Decodes Opus packets to 16-bit mono PCM at ``sample_rate`` (libopus downmixes stereo packets itself).

    Args:
        sample_rate: The rate to decode to (one of :data:`OPUS_RATES`).
    """

    def __init__(self, sample_rate: int) -> None:
        if sample_rate not in OPUS_RATES:
            raise ValueError(f"Opus decodes to {OPUS_RATES} Hz, not {sample_rate}")
        self._lib = load_libopus()
        error = ctypes.c_int()
        self._state = self._lib.opus_decoder_create(sample_rate, 1, ctypes.byref(error))
        _check(self._lib, error.value)
        self._max = _MAX_FRAME_SAMPLES * sample_rate // 48000
        self._out = ctypes.create_string_buffer(self._max * 2)

    def decode(self, packet: bytes) -> bytes:
        """The PCM of one packet; ``b""`` for an empty payload (libopus would conceal 120 ms of loss for it)."""
        if not packet:
            return b""
        samples = _check(self._lib, self._lib.opus_decode(self._state, packet, len(packet), self._out, self._max, 0))
        return self._out.raw[: samples * 2]

    def __del__(self) -> None:
        state, self._state = getattr(self, "_state", None), None
        if state:
            self._lib.opus_decoder_destroy(state)
