"""Our worker processes (resident flite, the pocketsphinx decoder): a module of ours on the other end of two pipes.

Each is started as ``python -m <module>`` with fixed arguments, talks over its stdin and stdout, and exits at the
end of its input. Standard library only: the workers themselves import this.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
from typing import IO

__all__ = ["ModuleWorker"]


class ModuleWorker:
    """A ``python -m module args...`` child with pipes to its stdin and from its stdout (stderr discarded).

    Args:
        module: Our module to run.
        args: Its arguments.
    """

    def __init__(self, module: str, *args: str) -> None:
        self.process = subprocess.Popen(  # noqa: S603 - our own module, fixed argv
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self.stdin: IO[bytes] = self.process.stdin
        self.stdout: IO[bytes] = self.process.stdout

    def stop(self, *, timeout: float) -> None:
        """End its input (it exits then); kill it if it has not exited within ``timeout`` seconds."""
        with contextlib.suppress(OSError):
            self.stdin.close()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)
