"""End-to-end voice fixtures: the real server in a subprocess, flite voices, headless Chromium, DB reads."""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

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
        return mint_token(self.env, f"{role}-{time.monotonic_ns()}@example.com", role)


_ENV_LOCK = threading.Lock()


def mint_token(env: dict[str, str], email: str, role: str) -> str:
    """Create the account ``email`` with ``role`` directly in the database of the server run with ``env`` and
    return a bearer token for it: ``tests.e2e.seed token``, run in this process under the server's environment
    (as a subprocess it cost a second or two of imports per token). Its own thread and event loop, so that an
    async test may call it too."""
    from tests.e2e import seed

    with _ENV_LOCK, mock.patch.dict(os.environ, env, clear=True), ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, seed.token(email, role)).result()


def _seed(env: dict[str, str]) -> None:
    """Migrate, give the default persona a short greeting, and ingest the demo knowledge base."""
    subprocess.run([sys.executable, "-m", "tests.e2e.seed", "seed"], env=env, cwd=REPO, check=True, capture_output=True)
    subprocess.run(
        [sys.executable, "-m", "agent", "ingest", str(DEMO_KB)], env=env, cwd=REPO, check=True, capture_output=True
    )


# Settings that only shape the running server, never what ``seed`` and ``ingest`` write (ingest reads the knowledge
# settings, not the voice pipeline's): servers differing only in these share one seeded data directory. Anything
# else (the knowledge settings above all) gets its own.
_RUNTIME_ONLY = tuple(
    f"VOXDESK_{section}__"
    for section in (
        "TELEPHONY",
        "VOICE",
        "PIPELINE",
        "HANDOFF",
        "RATE_LIMITS",
        "ANALYSIS",
        "SERVER",
        "LOGGING",
        "INTEGRATIONS",
    )
)
_TEMPLATES: dict[tuple[tuple[str, str], ...], Path] = {}


def _rewrite_paths(db_path: Path, old: str, new: str) -> None:
    """Point the absolute paths stored in the copied database (uploads' storage paths) at the copy."""
    with sqlite3.connect(db_path) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for column in [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]:
                db.execute(
                    f'UPDATE "{table}" SET "{column}" = replace("{column}", ?, ?) '
                    f'WHERE typeof("{column}") = \'text\' AND instr("{column}", ?) > 0',
                    (old, new, old),
                )


# What a server derives from the base at start-up and stores beside its index, reused while the base's fingerprint
# is unchanged (knowledge.calibration, knowledge.views, knowledge.answerability): seconds of embedding per start.
_DERIVED = ("calibration.json", "views.npz", "vocabulary.npz")


_DERIVED_KEPT: set[Path] = set()


def _keep_derived(data_dir: Path, template: Path) -> None:
    """Give the template what the first server started from it derived, so the next ones load it instead (the
    calibration ``ingest`` stores is not the one a server with sentence views uses: the server's replaces it)."""
    if template in _DERIVED_KEPT:
        return
    _DERIVED_KEPT.add(template)
    for name in _DERIVED:
        derived = data_dir / "knowledge" / name
        if derived.exists():
            shutil.copy2(derived, template / "knowledge" / name)


def seeded_data_dir(data_dir: Path, env: dict[str, str], extra_env: dict[str, str]) -> Path:
    """``data_dir`` as ``_seed`` leaves it: seeded and ingested once per set of knowledge-relevant settings in
    this pytest process, then copied (ingesting the demo knowledge base is seconds of embedding per server).
    Returns the template it was copied from."""
    key = tuple(sorted((k, v) for k, v in extra_env.items() if not k.startswith(_RUNTIME_ONLY)))
    template = _TEMPLATES.get(key)
    if template is None:
        parent = tempfile.mkdtemp(prefix="voxdesk-seeded-")
        atexit.register(shutil.rmtree, parent, ignore_errors=True)
        template = Path(parent) / "data"
        _seed({**env, "VOXDESK_DATA_DIR": str(template)})
        _TEMPLATES[key] = template
    shutil.copytree(template, data_dir, dirs_exist_ok=True)
    _rewrite_paths(data_dir / "voxdesk.db", str(template), str(data_dir))
    return template


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
    template = seeded_data_dir(data_dir, env, extra_env or {})
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
        time.sleep(0.2)  # polling readiness of a separate process: nothing to await
    _keep_derived(data_dir, template)
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
