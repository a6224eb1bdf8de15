"""A bearer token for a benchmark's calls, the way an operator gets one: ``voxdesk create-admin``, then login.

Benchmarks start the real server (``benchmarks.voice.server``) and call it over its public API; they take their
account through the product's own CLI and ``POST /api/auth/login`` rather than minting tokens in its database.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]

__all__ = ["operator_token"]


def operator_token(base_url: str, env: dict[str, str]) -> str:
    """Create an admin account with ``env`` (the server's environment) and log it in at ``base_url``.

    Raises:
        subprocess.CalledProcessError: ``create-admin`` failed.
        httpx.HTTPStatusError: The login was refused.
    """
    email = f"bench-{time.monotonic_ns()}@example.com"
    password = secrets.token_urlsafe(24)
    subprocess.run(
        [sys.executable, "-m", "agent", "create-admin", "--email", email],
        input=password + "\n",
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    )
    response = httpx.post(f"{base_url}/api/auth/login", data={"username": email, "password": password}, timeout=60.0)
    response.raise_for_status()
    return str(response.json()["access_token"])
