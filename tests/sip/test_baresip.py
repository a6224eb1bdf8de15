"""A second, independent SIP implementation calls Voxdesk: Debian's baresip softphone (libre/baresip 1.0).

baresip dials the server from its own SIP/RTP stack, plays a flite question from a WAV file (``aufile``) and
records what it hears; the call is then checked in the database (channel, caller ID, transcript) and in the
recording (the agent's voice). Uses the package's one server (``conftest.sip_server``).
"""

from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.sip.conftest import SipServer, free_udp_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _config(directory: Path, *, source: Path, dumps: Path) -> None:
    # sndfile writes what baresip sends (-enc.wav) and what it hears (-dec.wav) to snd_path.
    modules = "\n".join(f"module {name}.so" for name in ("g711", "aufile", "sndfile", "menu", "account"))
    (directory / "config").write_text(
        f"""sip_listen 127.0.0.1:{free_udp_port()}
module_path /usr/lib/baresip/modules
{modules}
audio_source aufile,{source}
snd_path {dumps}
audio_alert aufile,/dev/null
rtp_ports 42000-42998
net_interface 127.0.0.1
"""
    )
    (directory / "accounts").write_text("<sip:+15559990000@127.0.0.1>;regint=0;audio_codecs=PCMU\n")


def test_baresip_softphone_call_is_answered(sip_server: SipServer, tmp_path: Path) -> None:
    wav = tmp_path / "q16.wav"
    subprocess.run(["flite", "-voice", "slt", "-t", "How do I reset my password?", "-o", str(wav)], check=True)
    source = tmp_path / "question.wav"  # 8 kHz mono, silence around the question
    subprocess.run(["sox", str(wav), "-r", "8000", "-c", "1", str(source), "pad", "3", "16"], check=True)
    dumps = tmp_path / "snd"
    dumps.mkdir()
    _config(tmp_path, source=source, dumps=dumps)
    before = sip_server.voice.query("SELECT count(*) FROM calls WHERE channel = 'sip'")[0][0]
    proc = subprocess.run(
        ["baresip", "-f", str(tmp_path), "-t", "22", "-e", f"/dial sip:+15550100@127.0.0.1:{sip_server.sip_port}"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    calls = sip_server.voice.query(
        "SELECT id, status, caller_number FROM calls WHERE channel = 'sip' ORDER BY started_at"
    )
    assert len(calls) == before + 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    call_id, _status, number = calls[-1]
    assert number == "+15559990000"
    turns = sip_server.voice.query("SELECT role, text FROM call_turns WHERE call_id = ? ORDER BY seq", call_id)
    assert any(role == "caller" and "password" in text.lower() for role, text in turns), turns
    assert any(
        role == "agent" and ("password" in text.lower() or "reset link" in text.lower()) for role, text in turns[1:]
    ), turns
    heard = next(dumps.glob("*-dec.wav"))
    with wave.open(str(heard)) as handle:
        pcm = np.frombuffer(handle.readframes(handle.getnframes()), dtype=np.int16).astype(np.float64)
        rate = handle.getframerate()
    frame = rate // 50
    frames = pcm[: len(pcm) // frame * frame].reshape(-1, frame)
    assert (np.sqrt((frames**2).mean(axis=1)) > 300).sum() > 150  # > 3 s of the agent's voice heard by baresip
