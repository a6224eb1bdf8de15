"""End-to-end voice fixtures: the real server in a subprocess, flite voices, headless Chromium, DB reads."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
DEMO_KB = REPO / "demo" / "knowledge"
CHROMIUM = "/usr/bin/chromium"
SERVER_START_TIMEOUT = 240.0  # prewarming the models on a loaded 2-core machine


def chromium_args(mic_wav: Path) -> list[str]:
    """Chromium flags for a headless call over loopback with ``mic_wav`` (48 kHz mono) as the microphone."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={mic_wav}",
        "--allow-loopback-in-peer-connection",
        "--autoplay-policy=no-user-gesture-required",
    ]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def flite_pcm(text: str, *, voice: str = "slt") -> bytes:
    """16 kHz mono 16-bit PCM of ``text`` spoken by flite."""
    out = subprocess.run(
        ["flite", "-voice", voice, "-t", text, "-o", "/dev/stdout"], check=True, capture_output=True
    ).stdout
    return out[44:]


def write_wav(path: Path, pcm: bytes, *, rate: int) -> Path:
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(2)
        handle.setframerate(rate)
        handle.writeframes(pcm)
    return path


def resample_16k_to_48k(pcm: bytes) -> bytes:
    samples = np.frombuffer(pcm, dtype=np.int16).astype(np.float32)
    x_new = np.arange(len(samples) * 3) / 3.0
    return np.interp(x_new, np.arange(len(samples)), samples).astype(np.int16).tobytes()


def silence(secs: float, *, rate: int = 16000) -> bytes:
    return b"\0\0" * int(secs * rate)


def mic_wav(path: Path, parts: list[tuple[str, float | str]]) -> Path:
    """A 48 kHz mono WAV for Chromium's fake microphone: ``("silence", secs)`` and ``("say", text)`` parts."""
    pcm = b"".join(silence(float(v)) if kind == "silence" else flite_pcm(str(v)) for kind, v in parts)
    return write_wav(path, resample_16k_to_48k(pcm), rate=48000)


@dataclass
class VoiceServer:
    """A running ``voxdesk serve`` with its data directory."""

    base_url: str
    data_dir: Path
    log_path: Path
    env: dict[str, str]

    @property
    def ws_url(self) -> str:
        return self.base_url.replace("http://", "ws://")

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.data_dir / "voxdesk.db") as db:
            return list(db.execute(sql, args).fetchall())

    def token(self, role: str = "agent") -> str:
        """A bearer token for a fresh account with ``role`` (made directly in the database)."""
        email = f"{role}-{time.monotonic_ns()}@example.com"
        out = subprocess.run(
            [sys.executable, "-m", "tests.e2e.seed", "token", email, role],
            env=self.env,
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
        )
        return out.stdout.strip().splitlines()[-1]


def _seed(env: dict[str, str]) -> None:
    """Migrate, give the default persona a short greeting, and ingest the demo knowledge base."""
    subprocess.run([sys.executable, "-m", "tests.e2e.seed", "seed"], env=env, cwd=REPO, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "agent", "ingest", str(DEMO_KB)], env=env, cwd=REPO, check=True, capture_output=True
    )


def start_server(
    data_dir: Path, *, extra_env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[bytes], VoiceServer]:
    port = free_port()
    env = {
        **os.environ,
        "VOXDESK_ENV": "test",
        "VOXDESK_DATA_DIR": str(data_dir),
        "VOXDESK_SERVER__PORT": str(port),
        "VOXDESK_LOGGING__LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
    }
    env.pop("VOXDESK_DATABASE__URL", None)
    _seed(env)
    log_path = data_dir.parent / "server.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    server = VoiceServer(base_url=f"http://127.0.0.1:{port}", data_dir=data_dir, log_path=log_path, env=env)
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError("server exited:\n" + log_path.read_text()[-4000:])
        try:
            if httpx.get(server.base_url + "/health/ready", timeout=5).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            proc.terminate()
            raise RuntimeError("server not ready in time:\n" + log_path.read_text()[-4000:])
        time.sleep(0.5)  # polling readiness of a separate process: nothing to await
    return proc, server


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@pytest.fixture(scope="session")
def voice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoiceServer]:
    """The whole product (``python -m agent serve``) on a free loopback port, demo KB ingested."""
    root = tmp_path_factory.mktemp("voice-e2e")
    proc, server = start_server(root / "data")
    try:
        yield server
    finally:
        stop_server(proc)
