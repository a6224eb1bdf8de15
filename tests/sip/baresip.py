"""Debian's baresip (libre/baresip 1.0) as a softphone placing one call: the SIP/RTP stack independent of ours.

baresip plays a flite question from a WAV file (``aufile``, silence around it) and ``sndfile`` dumps what it sends
(``*-enc.wav``) and what it hears (``*-dec.wav``) into the dump directory.
"""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.sip.conftest import SipServer, free_udp_port

QUESTION = "How do I reset my password?"


@dataclass(frozen=True, slots=True)
class BaresipCall:
    """What one baresip call left behind.

    Attributes:
        output: The tail of baresip's stdout and stderr (for assertion messages).
        rate: The sample rate of what baresip heard (the codec's).
        heard: The agent's audio as baresip decoded it (16-bit mono).
    """

    output: str
    rate: int
    heard: np.ndarray


def speech_frames(pcm: np.ndarray, rate: int) -> int:
    """20 ms frames of ``pcm`` loud enough to be speech (RMS > 300)."""
    frame = rate // 50
    frames = pcm[: len(pcm) // frame * frame].astype(np.float64).reshape(-1, frame)
    return int((np.sqrt((frames**2).mean(axis=1)) > 300).sum())


def call_with_baresip(
    sip_server: SipServer, directory: Path, *, codec: str, caller: str, rtp_ports: str, seconds: int = 22
) -> BaresipCall:
    """Dial the server's SIP port from baresip offering only ``codec`` (``PCMU`` or ``G722``), ask ``QUESTION``.

    ``rtp_ports`` (``"42000-42998"``) keeps concurrent softphones apart; ``caller`` is baresip's SIP user.
    """
    rate, module = (16000, "g722") if codec == "G722" else (8000, "g711")
    wav = directory / "flite.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", QUESTION, "-o", str(wav)], check=True)
    source = directory / "question.wav"  # the codec's rate, mono, silence around the question
    subprocess.run(["sox", str(wav), "-r", str(rate), "-c", "1", str(source), "pad", "3", "16"], check=True)
    dumps = directory / "snd"
    dumps.mkdir()
    modules = "\n".join(f"module {name}.so" for name in (module, "aufile", "sndfile", "menu", "account"))
    (directory / "config").write_text(
        f"""sip_listen 127.0.0.1:{free_udp_port()}
module_path /usr/lib/baresip/modules
{modules}
audio_source aufile,{source}
snd_path {dumps}
audio_alert aufile,/dev/null
rtp_ports {rtp_ports}
net_interface 127.0.0.1
"""
    )
    (directory / "accounts").write_text(f"<sip:{caller}@127.0.0.1>;regint=0;audio_codecs={codec}\n")
    dial = f"/dial sip:+15550100@127.0.0.1:{sip_server.sip_port}"
    proc = subprocess.run(
        ["baresip", "-f", str(directory), "-t", str(seconds), "-e", dial],
        capture_output=True,
        text=True,
        timeout=seconds + 70,
        check=False,
    )
    output = proc.stdout[-3000:] + proc.stderr[-2000:]
    dumped = next(dumps.glob("*-dec.wav"), None)
    assert dumped is not None, output
    with wave.open(str(dumped)) as handle:
        heard_rate = handle.getframerate()
        heard = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16)
    return BaresipCall(output=output, rate=heard_rate, heard=heard)
