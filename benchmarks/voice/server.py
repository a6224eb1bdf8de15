"""Start ``python -m agent serve`` for a benchmark: temp data dir, short greeting, demo KB ingested.

``python -m benchmarks.voice.server seed`` (run with the server's environment) migrates the database and gives
the default persona a short greeting, so that measured turns are not queued behind a long one.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
DEMO_KB = REPO / "demo" / "knowledge"


@dataclass
class RunningServer:
    """A server subprocess and where to reach it."""

    process: subprocess.Popen[bytes]
    base_url: str
    data_dir: Path
    log_path: Path

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 30 s)."""
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(
    data_dir: Path,
    *,
    extra_env: dict[str, str] | None = None,
    ready_timeout: float = 300.0,
    knowledge: Path = DEMO_KB,
    root: Path = REPO,
) -> RunningServer:
    """Seed, ingest ``knowledge`` (the demo KB) and start the server; returns once ``/health/ready`` answers 200.

    ``root``: the checkout whose server runs (another commit's ``git archive``, to measure it beside this one).
    """
    port = _free_port()
    env = {
        **os.environ,
        "VOXDESK_ENV": "test",
        "VOXDESK_DATA_DIR": str(data_dir),
        "VOXDESK_RATE_LIMITS__VOICE": "100000/hour",
        "VOXDESK_VOICE__MAX_CONCURRENT_CALLS": "64",
        "HF_HUB_OFFLINE": "1",
        **(extra_env or {}),
    }
    env.pop("VOXDESK_DATABASE__URL", None)
    subprocess.run([sys.executable, "-m", "benchmarks.voice.server", "seed"], env=env, cwd=root, check=True)
    subprocess.run(
        [sys.executable, "-m", "agent", "ingest", str(knowledge)], env=env, cwd=root, check=True, capture_output=True
    )
    log_path = data_dir.parent / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "agent", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        cwd=root,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = RunningServer(process, f"http://127.0.0.1:{port}", data_dir, log_path)
    deadline = time.monotonic() + ready_timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError("server exited:\n" + log_path.read_text()[-3000:])
        try:
            if httpx.get(server.base_url + "/health/ready", timeout=5).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise RuntimeError("server not ready:\n" + log_path.read_text()[-3000:])
        time.sleep(0.5)


async def _seed() -> None:
    from config import load_settings
    from control_api.db.engine import create_engine, session_factory
    from control_api.db.migrate import upgrade
    from control_api.services import personas

    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = create_engine(settings.database_url)
    await upgrade(engine)
    async with session_factory(engine)() as db:
        if await personas.find_active(db, personas.DEFAULT_PERSONA) is None:
            await personas.create(
                db,
                name=personas.DEFAULT_PERSONA,
                greeting="Hi, this is Ava.",
                consent_notice="This call is recorded.",
            )
    await engine.dispose()


if __name__ == "__main__":
    if sys.argv[1:] == ["seed"]:
        asyncio.run(_seed())
