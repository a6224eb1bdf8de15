"""Render the evaluation questions to 16 kHz mono WAVs with flite voices and espeak-ng (into benchmarks/out/)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "out" / "asr_eval"
VOICES = ("slt", "rms", "awb", "kal16", "espeak-en-us", "espeak-en-us+f3")


def questions() -> list[dict[str, str]]:
    """The evaluation questions: id, text, document, heading, expected fact."""
    return list(json.loads((HERE / "questions.json").read_text(encoding="utf-8")))


def render(voice: str, text: str, path: Path) -> Path:
    """Write ``text`` spoken by ``voice`` to ``path`` as 16 kHz 16-bit mono WAV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        if voice.startswith("espeak-"):
            subprocess.run(["espeak-ng", "-v", voice.removeprefix("espeak-"), "-w", str(raw), text], check=True)
        else:
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(raw)], check=True)
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(path)], check=True)
    return path


def render_all(voices: tuple[str, ...] = VOICES, out: Path = OUT) -> dict[str, dict[str, Path]]:
    """Render every question in every voice (cached: existing files are kept)."""
    if shutil.which("flite") is None or shutil.which("sox") is None:
        raise RuntimeError("flite and sox are needed (Debian packages)")
    files: dict[str, dict[str, Path]] = {}
    for voice in voices:
        files[voice] = {}
        for q in questions():
            path = out / voice / f"{q['id']}.wav"
            if not path.exists():
                render(voice, q["text"], path)
            files[voice][q["id"]] = path
    return files


if __name__ == "__main__":
    rendered = render_all()
    print(json.dumps({v: len(f) for v, f in rendered.items()}))
