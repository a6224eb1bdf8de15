"""Run the ``voxdesk`` command line as a real subprocess, with a clean environment and a scratch data dir."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

VOXDESK = [sys.executable, "-m", "agent"]


def run_voxdesk(
    args: list[str],
    tmp_path: Path,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
    timeout: float = 180,
) -> subprocess.CompletedProcess[str]:
    """``voxdesk ARGS`` in ``tmp_path`` with no inherited ``VOXDESK_*`` settings beyond ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VOXDESK_")}
    clean.update({"VOXDESK_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1"})
    clean.update(env or {})
    return subprocess.run(
        [*VOXDESK, *args],
        cwd=tmp_path,
        env=clean,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
